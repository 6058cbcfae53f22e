// Declared types are recorded as a person writes them.

use std::collections::HashMap;
use std::sync::Mutex;

struct Queue;
struct Immut<T>(T);

#[webstack::instrument]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn typed<'a>(
    queue: &Mutex<Queue>,
    bytes: &'a mut Vec<u8>,
    map: HashMap<u8, Vec<Option<&'a str>>>,
    array: [u8; 4],
    callback: &dyn Fn(u8) -> Result<(), String>,
    raw: *const u8,
    wrapped: Immut<&mut [u8]>,
    pair: &mut (u8, &'static str),
) {
    let frame = ui_tests::frame("typed");
    let types: Vec<&str> = frame.args.iter().map(|a| a.ty).collect();
    assert_eq!(
        types,
        [
            "&Mutex<Queue>",
            "&'a mut Vec<u8>",
            "HashMap<u8, Vec<Option<&'a str>>>",
            "[u8; 4]",
            "&dyn Fn(u8) -> Result<(), String>",
            "*const u8",
            "Immut<&mut [u8]>",
            "&mut (u8, &'static str)",
        ]
    );
    let _ = (queue, bytes, map, array, callback, raw, wrapped, pair);
}

#[webstack::instrument]
fn more(
    iter: impl Iterator<Item = u8> + Send,
    boxed: Box<dyn for<'b> Fn(&'b str) -> &'b str + Send + 'static>,
    projection: <Vec<u8> as IntoIterator>::Item,
    function: fn(u8, (u8, u8)) -> (u8, u8),
) {
    let types: Vec<&str> = ui_tests::frame("more").args.iter().map(|a| a.ty).collect();
    assert_eq!(
        types,
        [
            "impl Iterator<Item = u8> + Send",
            "Box<dyn for<'b> Fn(&'b str) -> &'b str + Send + 'static>",
            "<Vec<u8> as IntoIterator>::Item",
            "fn(u8, (u8, u8)) -> (u8, u8)",
        ]
    );
    let _ = (iter, boxed, projection, function);
}

fn main() {
    let mut bytes = vec![1];
    let mut slice = [0u8; 2];
    let mut pair = (1, "x");
    typed(
        &Mutex::new(Queue),
        &mut bytes,
        HashMap::new(),
        [0; 4],
        &|_| Ok(()),
        std::ptr::null(),
        Immut(&mut slice),
        &mut pair,
    );
    more([1u8].into_iter(), Box::new(|s| s), 0, |a, b| (a, b.0));
}
