//! The bounded hand-off between a decoding pipeline and its consumer.
//!
//! GStreamer's streaming thread produces frames; the engine consumes them at its own pace.
//! Two policies, chosen by [`crate::Pacing`]:
//! - **drop oldest** (live sources): a full queue evicts its oldest frame, so the consumer
//!   always sees the newest frames and memory never grows with a backlog; every eviction is
//!   counted;
//! - **block** (replays, benchmarks): the producer waits for room, which pushes back into
//!   GStreamer so no frame is ever lost and a replay is deterministic.
//!
//! Control messages (end of stream, loss, errors) travel in the same queue, after the frames
//! that preceded them, are never evicted, and never block the producer.

use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the producer does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    DropOldest,
    Block,
}

/// An item in the queue: data or a control message.
#[derive(Debug)]
pub(crate) enum Item<F, C> {
    Frame(F),
    Control(C),
}

/// Returned by [`FrameQueue::push_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushOutcome {
    Queued,
    /// Queued after evicting the oldest frame.
    QueuedDroppedOldest,
    /// The queue is closed (consumer gone, or the stream ended): the producer should stop.
    Closed,
}

struct State<F, C> {
    items: VecDeque<Item<F, C>>,
    frames: usize,
    /// No more frames accepted (stream ended or consumer closed).
    ended: bool,
    dropped: u64,
    blocked_since: Option<Instant>,
}

pub(crate) struct FrameQueue<F, C> {
    state: Mutex<State<F, C>>,
    capacity: usize,
    overflow: Overflow,
    readable: Condvar,
    writable: Condvar,
}

impl<F, C> FrameQueue<F, C> {
    pub fn new(capacity: usize, overflow: Overflow) -> Self {
        FrameQueue {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity.max(1) + 2),
                frames: 0,
                ended: false,
                dropped: 0,
                blocked_since: None,
            }),
            capacity: capacity.max(1),
            overflow,
            readable: Condvar::new(),
            writable: Condvar::new(),
        }
    }

    /// Adds a frame according to the overflow policy. In `Block` mode this waits until there
    /// is room or the queue is closed.
    pub fn push_frame(&self, frame: F) -> PushOutcome {
        let mut st = self.state.lock();
        let mut outcome = PushOutcome::Queued;
        while !st.ended && st.frames >= self.capacity {
            match self.overflow {
                Overflow::DropOldest => {
                    if let Some(i) = st.items.iter().position(|i| matches!(i, Item::Frame(_))) {
                        st.items.remove(i);
                        st.frames -= 1;
                        st.dropped += 1;
                        outcome = PushOutcome::QueuedDroppedOldest;
                    }
                }
                Overflow::Block => {
                    st.blocked_since.get_or_insert_with(Instant::now);
                    self.writable.wait(&mut st);
                }
            }
        }
        st.blocked_since = None;
        if st.ended {
            return PushOutcome::Closed;
        }
        st.items.push_back(Item::Frame(frame));
        st.frames += 1;
        drop(st);
        self.readable.notify_one();
        outcome
    }

    /// Appends a control message that ends the stream: later frames are refused, frames
    /// already queued stay readable before it. Ignored when the stream already ended.
    pub fn push_terminal(&self, control: C) -> bool {
        let mut st = self.state.lock();
        if st.ended {
            return false;
        }
        st.ended = true;
        st.items.push_back(Item::Control(control));
        drop(st);
        self.readable.notify_all();
        self.writable.notify_all();
        true
    }

    /// Takes the next item, waiting up to `timeout`.
    pub fn pop(&self, timeout: Duration) -> Option<Item<F, C>> {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock();
        loop {
            if let Some(item) = st.items.pop_front() {
                if matches!(item, Item::Frame(_)) {
                    st.frames -= 1;
                }
                drop(st);
                self.writable.notify_one();
                return Some(item);
            }
            if self.readable.wait_until(&mut st, deadline).timed_out() {
                return None;
            }
        }
    }

    /// Refuses further frames and wakes a blocked producer (consumer going away).
    pub fn close(&self) {
        let mut st = self.state.lock();
        st.ended = true;
        drop(st);
        self.writable.notify_all();
        self.readable.notify_all();
    }

    pub fn dropped(&self) -> u64 {
        self.state.lock().dropped
    }

    /// Whether the producer is currently held back by a full queue (blocking mode): the
    /// source is not stalled, the consumer is slow.
    pub fn producer_blocked(&self) -> bool {
        let st = self.state.lock();
        st.blocked_since.is_some() || st.frames >= self.capacity
    }

    pub fn is_ended(&self) -> bool {
        self.state.lock().ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    type Q = FrameQueue<u32, &'static str>;

    fn frame(item: Option<Item<u32, &'static str>>) -> Option<u32> {
        match item {
            Some(Item::Frame(f)) => Some(f),
            _ => None,
        }
    }

    #[test]
    fn drop_oldest_keeps_newest_and_counts() {
        let q = Q::new(3, Overflow::DropOldest);
        for i in 0..10 {
            let o = q.push_frame(i);
            assert_eq!(
                o,
                if i < 3 {
                    PushOutcome::Queued
                } else {
                    PushOutcome::QueuedDroppedOldest
                }
            );
        }
        assert_eq!(q.dropped(), 7);
        let got: Vec<u32> = (0..3)
            .filter_map(|_| frame(q.pop(Duration::ZERO)))
            .collect();
        assert_eq!(got, vec![7, 8, 9]);
        assert!(q.pop(Duration::from_millis(5)).is_none());
    }

    #[test]
    fn control_is_never_evicted_and_ends_the_stream() {
        let q = Q::new(2, Overflow::DropOldest);
        q.push_frame(1);
        q.push_frame(2);
        assert!(q.push_terminal("eos"));
        assert!(!q.push_terminal("lost"));
        assert_eq!(q.push_frame(3), PushOutcome::Closed);
        assert_eq!(frame(q.pop(Duration::ZERO)), Some(1));
        assert_eq!(frame(q.pop(Duration::ZERO)), Some(2));
        assert!(matches!(q.pop(Duration::ZERO), Some(Item::Control("eos"))));
    }

    #[test]
    fn block_mode_never_drops_and_unblocks_on_close() {
        let q = Arc::new(Q::new(2, Overflow::Block));
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                for i in 0..100 {
                    if q.push_frame(i) == PushOutcome::Closed {
                        break;
                    }
                    n += 1;
                }
                n
            })
        };
        let mut got = Vec::new();
        while got.len() < 50 {
            if let Some(f) = frame(q.pop(Duration::from_secs(5))) {
                got.push(f);
            }
        }
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        assert_eq!(q.dropped(), 0);
        // The producer is now waiting for room; closing must release it.
        std::thread::sleep(Duration::from_millis(20));
        assert!(q.producer_blocked());
        q.close();
        let pushed = producer.join().unwrap();
        assert!((50..=52).contains(&pushed), "pushed {pushed}");
    }
}
