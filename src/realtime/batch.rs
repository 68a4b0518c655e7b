//! Reads of different keys that streams ask for at once go to the database as one query. After
//! a deploy every browser comes back with a session of its own: 10,000 one-row reads would
//! each cost a trip to the database's thread and back (bench/README.md), where one read of the
//! sessions asked for meanwhile costs one.
//!
//! One read runs at a time; whoever asks while it runs is read by the next, together with
//! everyone else who asked by then (up to `MAX_KEYS`). So, as with `coalesce.rs`, each answer
//! comes from a read that began after its request.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Keys in one read (a query's placeholders).
pub const MAX_KEYS: usize = 256;

enum Turn<V> {
    /// The read made for you.
    Done(V),
    /// Make the next read, for yourself and whoever waits.
    Lead,
}

type Waiting<K, V> = VecDeque<(K, oneshot::Sender<Turn<V>>)>;

struct State<K, V> {
    reading: bool,
    waiting: Waiting<K, V>,
}

/// One read at a time, of every key asked for since the last began.
pub struct Batched<K, V> {
    state: Mutex<State<K, V>>,
}

impl<K, V> Default for Batched<K, V> {
    fn default() -> Self {
        Batched {
            state: Mutex::new(State {
                reading: false,
                waiting: VecDeque::new(),
            }),
        }
    }
}

impl<K, V> std::fmt::Debug for Batched<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batched").finish_non_exhaustive()
    }
}

impl<K: Clone, V> Batched<K, V> {
    /// The value of `key` from a read that began after this call. `read` gets keys and returns
    /// one value per key, in order; it runs when this caller's turn comes to read for all who
    /// wait. None only if a read returned fewer values than keys.
    pub async fn get<F, Fut>(&self, key: K, read: F) -> Option<V>
    where
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = Vec<V>>,
    {
        let (tx, mut rx) = oneshot::channel();
        let lead = {
            let mut state = self.state.lock().expect("batch lock");
            state.waiting.push_back((key.clone(), tx));
            !std::mem::replace(&mut state.reading, true)
        };
        if !lead {
            match rx.await {
                Ok(Turn::Done(v)) => return Some(v),
                Ok(Turn::Lead) => {
                    // Our entry was taken to hand us the turn: first in our own read.
                    let (tx, own) = oneshot::channel();
                    rx = own;
                    let mut state = self.state.lock().expect("batch lock");
                    state.waiting.push_front((key.clone(), tx));
                }
                // The read that took us was dropped mid-way (its caller went away): alone.
                Err(_) => return read(vec![key]).await.into_iter().next(),
            }
        }
        // Our turn. If this future is dropped mid-read, the guard still hands the turn on (and
        // those taken into this read, their senders dropped, read alone).
        let turn = Leading { owner: self };
        let taken: Waiting<K, V> = {
            let mut state = self.state.lock().expect("batch lock");
            let n = state.waiting.len().min(MAX_KEYS);
            state.waiting.drain(..n).collect()
        };
        let keys = taken.iter().map(|(k, _)| k.clone()).collect();
        let values = read(keys).await;
        for ((_, tx), v) in taken.into_iter().zip(values) {
            let _ = tx.send(Turn::Done(v));
        }
        drop(turn);
        match rx.await {
            Ok(Turn::Done(v)) => Some(v),
            _ => None,
        }
    }

    /// Gives the next read to the first of those still waiting, or ends the reading.
    fn hand_on(&self) {
        let mut state = self.state.lock().expect("batch lock");
        while let Some((_, tx)) = state.waiting.pop_front() {
            if tx.send(Turn::Lead).is_ok() {
                return;
            }
            // Gone meanwhile: offer it to the next.
        }
        state.reading = false;
    }
}

/// Holds the turn to read; hands it on when dropped.
struct Leading<'a, K: Clone, V> {
    owner: &'a Batched<K, V>,
}

impl<K: Clone, V> Drop for Leading<'_, K, V> {
    fn drop(&mut self) {
        self.owner.hand_on();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Answers each key with (the key, how many reads began before this one), after a while.
    async fn numbered(reads: &AtomicUsize, keys: Vec<u32>) -> Vec<(u32, usize)> {
        let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        keys.into_iter().map(|k| (k, n)).collect()
    }

    fn ask(
        b: &Arc<Batched<u32, (u32, usize)>>,
        reads: &Arc<AtomicUsize>,
        key: u32,
    ) -> tokio::task::JoinHandle<Option<(u32, usize)>> {
        let (b, reads) = (b.clone(), reads.clone());
        tokio::spawn(async move { b.get(key, |keys| numbered(&reads, keys)).await })
    }

    #[tokio::test]
    async fn a_hundred_keys_asked_during_a_read_share_the_next_and_none_gets_an_older_one() {
        let b = Arc::new(Batched::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let first = ask(&b, &reads, 1000);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let rest: Vec<_> = (0..100).map(|k| ask(&b, &reads, k)).collect();
        assert_eq!(first.await.unwrap(), Some((1000, 1)));
        for (k, r) in rest.into_iter().enumerate() {
            // Its own key, from the read that began after it asked.
            assert_eq!(r.await.unwrap(), Some((k as u32, 2)));
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2, "one read for the hundred");
        let state = b.state.lock().unwrap();
        assert!(
            !state.reading && state.waiting.is_empty(),
            "the reading ended"
        );
    }

    #[tokio::test]
    async fn a_read_takes_at_most_max_keys() {
        let b = Arc::new(Batched::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let first = ask(&b, &reads, u32::MAX);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let n = MAX_KEYS as u32 + 10;
        let rest: Vec<_> = (0..n).map(|k| ask(&b, &reads, k)).collect();
        first.await.unwrap();
        let mut second = 0;
        for r in rest {
            let (_, read) = r.await.unwrap().unwrap();
            second += usize::from(read == 2);
        }
        assert_eq!(
            second, MAX_KEYS,
            "the read after the first took MAX_KEYS of them"
        );
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_reader_that_goes_away_hands_the_turn_on_and_its_batch_reads_alone() {
        let b = Arc::new(Batched::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let first = ask(&b, &reads, 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Taken into the second read, whose reader then goes away mid-read.
        let doomed = ask(&b, &reads, 2);
        let taken = ask(&b, &reads, 3);
        assert!(first.await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let later = ask(&b, &reads, 4);
        doomed.abort();
        for r in [taken, later] {
            let got = tokio::time::timeout(Duration::from_secs(2), r)
                .await
                .expect("nobody is left waiting")
                .unwrap();
            assert!(got.is_some());
        }
        let state = b.state.lock().unwrap();
        assert!(!state.reading && state.waiting.is_empty());
    }

    #[tokio::test]
    async fn a_read_that_returns_too_few_values_answers_none_to_the_rest() {
        let b = Batched::<u32, u32>::default();
        let got = b.get(7, |_keys| async { Vec::new() }).await;
        assert_eq!(got, None);
        assert!(!b.state.lock().unwrap().reading);
    }
}
