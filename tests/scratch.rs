use std::sync::mpsc;
use webstack::{Options, Snapshot};

struct Queue;

#[webstack::instrument]
fn worker(id: u32, name: &str, q: &Queue, rx: &mpsc::Receiver<()>) {
    inner(id as u64 * 2, Some(3u8));
    rx.recv().ok();
}

#[webstack::instrument]
fn inner(x: u64, o: Option<u8>) {}

#[webstack::instrument]
async fn leaf(n: u32, rx: tokio::sync::oneshot::Receiver<()>) {
    rx.await.ok();
}

#[webstack::instrument(name = "conn")]
async fn root(n: u32, rx: tokio::sync::oneshot::Receiver<()>) {
    leaf(n + 1, rx).await
}

#[test]
fn scratch() {
    let (tx, rx) = mpsc::channel();
    let q = Box::leak(Box::new(Queue));
    let h = webstack::thread::Builder::new()
        .name("w1".into())
        .spawn(move || worker(7, "alice", q, &rx))
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (otx, orx) = tokio::sync::oneshot::channel();
    rt.spawn(root(5, orx));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let s = Snapshot::capture(&Options::default().augment(false));
    println!("{}", serde_json::to_string_pretty(&s).unwrap());
    tx.send(()).unwrap();
    otx.send(()).unwrap();
    h.join().unwrap();
}
