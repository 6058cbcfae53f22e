//! Whether a native stack is whole: every function from the blocking call
//! to the thread's start, the test's own ones included, in order. A stack
//! cut short (`syscall`, `Condvar::wait`, then `start_thread`: issue 22)
//! fails with the stack it got.

use webstack::Frame;

/// The outermost function of a thread glibc started (only the `clone` that
/// started it, and what an unwinder makes of its end, may follow).
const THREAD_START: &str = "start_thread";

/// The frames as lines, innermost first, instrumented ones marked `*`.
pub fn describe(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| {
            format!(
                "  {}{} {}:{}\n",
                if f.instrumented { "*" } else { " " },
                f.function,
                f.file,
                f.line
            )
        })
        .collect()
}

/// Checks that `frames` (innermost first) hold a frame for each link of
/// `chain`, in this order, and then the thread's start (`start_thread`). A
/// link is one or more alternatives separated by `|`, each matched as a
/// part of the function's name (`"syscall|futex"`).
pub fn whole(frames: &[Frame], chain: &[&str]) -> Result<(), String> {
    let after = in_order(frames, chain)?;
    if frames[after..].iter().any(|f| f.function == THREAD_START) {
        Ok(())
    } else {
        Err(format!(
            "no {THREAD_START} after frame {after} (chain {chain:?}):\n{}",
            describe(frames)
        ))
    }
}

/// Checks that `frames` (innermost first) hold a frame for each link of
/// `chain` (as for [`whole`]), in this order, wherever the stack ends (one
/// deeper than webstack keeps); returns the index after the last link's
/// frame.
pub fn in_order(frames: &[Frame], chain: &[&str]) -> Result<usize, String> {
    let mut next = 0;
    for link in chain {
        let found = frames[next..].iter().position(|f| {
            link.split('|')
                .any(|alternative| f.function.contains(alternative))
        });
        match found {
            Some(at) => next += at + 1,
            None => {
                return Err(format!(
                    "no {link:?} after frame {next} (chain {chain:?}):\n{}",
                    describe(frames)
                ))
            }
        }
    }
    Ok(next)
}

/// Panics unless [`whole`] holds.
#[track_caller]
pub fn assert_whole(frames: &[Frame], chain: &[&str]) {
    if let Err(e) = whole(frames, chain) {
        panic!("the native stack is not whole: {e}");
    }
}
