//! The shared-model batcher: many producers, their own results, bounded queues.

mod common;

use common::{cell_frame, frame100, shipped, tiny};
use sightline_core::{BBox, ClassId, Detection, Frame, Pts};
use sightline_inference::{
    BatchOptions, DetectOptions, Family, InferError, RuntimeOptions, SharedModel,
};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

#[test]
fn concurrent_producers_get_their_own_results_from_shared_batches() {
    let (onnx, manifest) = tiny(Family::Yolov8);
    let opts = RuntimeOptions {
        batch: BatchOptions {
            max_batch: 8,
            max_wait: Duration::from_millis(20),
        },
        ..RuntimeOptions::default()
    };
    let model = SharedModel::load(&onnx, manifest, &opts).unwrap();
    assert!(model.info().dynamic_batch);
    const PRODUCERS: u32 = 8;
    const ROUNDS: u32 = 25;
    std::thread::scope(|s| {
        for p in 0..PRODUCERS {
            let client = model.client(4);
            s.spawn(move || {
                // Producer p owns two cells and paints them red or green by round.
                for round in 0..ROUNDS {
                    let cell = p * 2 + round % 2;
                    let (gx, gy) = (cell % 4, cell / 4);
                    let green = round % 3 == 0;
                    let rgb = if green { [0, 255, 0] } else { [255, 0, 0] };
                    let dets = client
                        .infer(&cell_frame(32, gx, gy, rgb), &DetectOptions::default())
                        .unwrap();
                    let (x, y) = (gx as f32 * 8.0, gy as f32 * 8.0);
                    assert_eq!(dets.len(), 1, "producer {p} round {round}: {dets:?}");
                    assert_eq!(
                        dets[0].bbox,
                        BBox::new(x, y, x + 8.0, y + 8.0),
                        "producer {p}"
                    );
                    assert_eq!(dets[0].class_id, ClassId(u32::from(green)), "producer {p}");
                }
                assert_eq!(client.dropped(), 0);
            });
        }
    });
    let stats = model.stats();
    assert_eq!(stats.frames, u64::from(PRODUCERS * ROUNDS));
    assert_eq!(stats.dropped, 0);
    assert!(
        stats.batch_sizes.iter().skip(2).any(|n| *n > 0),
        "no batch gathered more than one request: {:?}",
        stats.batch_sizes
    );
    assert!(
        stats.batch_sizes.len() <= 9,
        "batches larger than max_batch: {:?}",
        stats.batch_sizes
    );
    assert_eq!(stats.latency.count, stats.batches);
}

fn mirrored(f: &Frame) -> Frame {
    let mut out = f.clone();
    let w = f.width as usize;
    for (src, dst) in f
        .data
        .chunks_exact(w * 3)
        .zip(out.data.chunks_exact_mut(w * 3))
    {
        for x in 0..w {
            dst[x * 3..x * 3 + 3].copy_from_slice(&src[(w - 1 - x) * 3..(w - x) * 3]);
        }
    }
    out
}

#[test]
fn fixed_batch_model_runs_requests_one_at_a_time_and_routes_them_back() {
    let (onnx, manifest) = shipped("nanodet-m-416");
    let model = SharedModel::load(&onnx, manifest, &RuntimeOptions::default()).unwrap();
    assert!(
        !model.info().dynamic_batch,
        "the shipped NanoDet has a fixed batch of 1"
    );
    let frames = [
        frame100(),
        mirrored(&frame100()),
        Frame::filled(640, 480, [90, 90, 90], Pts::ZERO),
    ];
    let solo = model.client(1);
    let expected: Vec<Vec<Detection>> = frames
        .iter()
        .map(|f| solo.infer(f, &DetectOptions::default()).unwrap())
        .collect();
    assert_ne!(expected[0], expected[1]);
    std::thread::scope(|s| {
        for (f, want) in frames.iter().zip(&expected) {
            let client = model.client(2);
            s.spawn(move || {
                for _ in 0..3 {
                    assert_eq!(&client.infer(f, &DetectOptions::default()).unwrap(), want);
                }
            });
        }
    });
    let stats = model.stats();
    assert_eq!(stats.batch_sizes, vec![0, stats.batches]);
    assert_eq!(stats.frames, 3 + 9);
}

#[test]
fn a_full_queue_drops_its_oldest_request_and_counts_it() {
    let (onnx, manifest) = shipped("nanodet-m-416");
    let model = SharedModel::load(&onnx, manifest, &RuntimeOptions::default()).unwrap();
    let client = model.client(2);
    let frame = frame100();
    // Submitting is far faster than a ~40 ms inference: the queue overflows.
    let pending: Vec<_> = (0..10)
        .map(|_| client.submit(&frame, &DetectOptions::default()).unwrap())
        .collect();
    let results: Vec<_> = pending
        .into_iter()
        .map(|p| p.wait(Duration::from_secs(30)))
        .collect();
    let dropped = results
        .iter()
        .filter(|r| matches!(r, Err(InferError::Dropped)))
        .count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(dropped + ok, 10, "{results:?}");
    assert!(dropped >= 3, "only {dropped} dropped");
    assert_eq!(client.dropped(), dropped as u64);
    assert_eq!(model.stats().dropped, dropped as u64);
    // The newest request always survives.
    assert!(results.last().unwrap().is_ok());
}

#[test]
fn waiting_times_out_and_abandoned_requests_do_not_break_the_model() {
    let (onnx, manifest) = shipped("nanodet-m-416");
    let model = SharedModel::load(&onnx, manifest, &RuntimeOptions::default()).unwrap();
    let client = model.client(4);
    let p = client
        .submit(&frame100(), &DetectOptions::default())
        .unwrap();
    assert!(matches!(
        p.wait(Duration::ZERO),
        Err(InferError::Timeout(_))
    ));
    let again = client
        .infer(&frame100(), &DetectOptions::default())
        .unwrap();
    assert!(again.len() >= 6);
    // A client dropped with work queued: the model keeps serving others.
    let doomed = model.client(4);
    let orphan = doomed
        .submit(&frame100(), &DetectOptions::default())
        .unwrap();
    drop(doomed);
    match orphan.wait(Duration::from_secs(30)) {
        Ok(d) => assert_eq!(d, again),
        Err(e) => assert!(matches!(e, InferError::Closed), "{e}"),
    }
    assert_eq!(
        client
            .infer(&frame100(), &DetectOptions::default())
            .unwrap(),
        again
    );
}

struct ThreadWaker(std::thread::Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn results_can_be_awaited_from_async_code() {
    let (onnx, manifest) = tiny(Family::Yolov10);
    let model = SharedModel::load(&onnx, manifest, &RuntimeOptions::default()).unwrap();
    let client = model.client(1);
    let pending = client
        .submit(
            &cell_frame(32, 1, 2, [255, 0, 0]),
            &DetectOptions::default(),
        )
        .unwrap();
    let dets = block_on(pending.wait_async()).unwrap();
    assert_eq!(dets.len(), 1);
    assert_eq!(dets[0].bbox, BBox::new(8.0, 16.0, 16.0, 24.0));
}

#[test]
fn model_stops_when_the_last_handle_goes() {
    let (onnx, manifest) = tiny(Family::Yolov8);
    let model = SharedModel::load(&onnx, manifest, &RuntimeOptions::default()).unwrap();
    let client = model.client(1);
    drop(model);
    // The client keeps the model alive.
    assert!(
        client
            .infer(
                &cell_frame(32, 0, 0, [255, 0, 0]),
                &DetectOptions::default()
            )
            .is_ok()
    );
    let weak = Arc::downgrade(client.model());
    drop(client);
    assert!(weak.upgrade().is_none());
}
