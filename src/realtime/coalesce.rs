//! Reads that many streams ask for at once share one database read. In a reconnect storm
//! after a restart every browser resumes from the same Last-Event-ID, often in few sessions:
//! 10,000 streams would make 10,000 identical reads of the event log, the session and the user.
//!
//! A read is shared only by those who asked before it began, so each sees the database as of
//! after its own request: a stream that subscribed to the hub and then asked misses nothing
//! committed in between. Who asks while a read runs waits for the next one, which one of them
//! makes (handed the turn when the current one ends).

use std::collections::hash_map::{Entry, HashMap};
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::oneshot;

type Waiter<V> = oneshot::Sender<Turn<V>>;

enum Turn<V> {
    /// The read made for you.
    Done(V),
    /// Make the next read, for yourself and these.
    Lead(Vec<Waiter<V>>),
}

/// One read at a time per key; those who ask meanwhile share the next.
pub struct Coalesce<K, V> {
    /// Per key with a read running: who waits for the next one.
    slots: Mutex<HashMap<K, Vec<Waiter<V>>>>,
}

impl<K, V> Default for Coalesce<K, V> {
    fn default() -> Self {
        Coalesce {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V> std::fmt::Debug for Coalesce<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalesce").finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Coalesce<K, V> {
    /// `read`'s result, or that of a read of the same key begun after this call.
    pub async fn read<F, Fut>(&self, key: K, read: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let waiting = {
            let mut slots = self.slots.lock().expect("coalesce lock");
            match slots.entry(key.clone()) {
                Entry::Occupied(mut e) => {
                    let (tx, rx) = oneshot::channel();
                    e.get_mut().push(tx);
                    Some(rx)
                }
                Entry::Vacant(e) => {
                    e.insert(Vec::new());
                    None
                }
            }
        };
        let mut serve = Vec::new();
        if let Some(rx) = waiting {
            match rx.await {
                Ok(Turn::Done(v)) => return v,
                Ok(Turn::Lead(others)) => serve = others,
                // The one who was to read for us went away mid-turn: read alone.
                Err(_) => return read().await,
            }
        }
        // Our turn: whoever asks from now on waits for the next. If this future is dropped
        // mid-read, the guard still hands the turn on (and `serve` read alone).
        let turn = Holding { owner: self, key };
        let v = read().await;
        for w in serve {
            let _ = w.send(Turn::Done(v.clone()));
        }
        drop(turn);
        v
    }

    /// Gives the next read to one of those who asked during the last, or frees the key.
    fn hand_on(&self, key: &K) {
        loop {
            let mut next = {
                let mut slots = self.slots.lock().expect("coalesce lock");
                let Some(waiting) = slots.get_mut(key) else {
                    return;
                };
                if waiting.is_empty() {
                    slots.remove(key);
                    return;
                }
                std::mem::take(waiting)
            };
            while !next.is_empty() {
                let first = next.remove(0);
                match first.send(Turn::Lead(next)) {
                    Ok(()) => return,
                    // Gone meanwhile: offer it to the next.
                    Err(Turn::Lead(back)) => next = back,
                    Err(Turn::Done(_)) => return,
                }
            }
            // Every one of them had gone; others may have asked meanwhile.
        }
    }
}

/// Holds a key's turn; hands it on when dropped.
struct Holding<'a, K: Hash + Eq + Clone, V: Clone> {
    owner: &'a Coalesce<K, V>,
    key: K,
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for Holding<'_, K, V> {
    fn drop(&mut self) {
        self.owner.hand_on(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Reads that return how many reads began before them (their "snapshot").
    async fn counted(reads: &AtomicUsize) -> usize {
        let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        n
    }

    #[tokio::test]
    async fn a_hundred_at_once_share_two_reads_and_none_gets_an_older_one() {
        let c = Arc::new(Coalesce::<u8, usize>::default());
        let reads = Arc::new(AtomicUsize::new(0));
        // One asks first; a hundred ask while its read runs: they share the next read.
        let first = {
            let (c, reads) = (c.clone(), reads.clone());
            tokio::spawn(async move { c.read(1, || counted(&reads)).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let asked_during = reads.load(Ordering::SeqCst);
        let rest: Vec<_> = (0..100)
            .map(|_| {
                let (c, reads) = (c.clone(), reads.clone());
                tokio::spawn(async move { c.read(1, || counted(&reads)).await })
            })
            .collect();
        assert_eq!(first.await.unwrap(), 1);
        for r in rest {
            // A read that began after they asked (the first had begun before).
            assert!(r.await.unwrap() > asked_during);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2, "one read for the hundred");
        assert!(c.slots.lock().unwrap().is_empty(), "the key is freed");
    }

    #[tokio::test]
    async fn a_reader_that_goes_away_hands_the_turn_on() {
        let c = Arc::new(Coalesce::<u8, usize>::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let doomed = {
            let (c, reads) = (c.clone(), reads.clone());
            tokio::spawn(async move { c.read(1, || counted(&reads)).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let waiter = {
            let (c, reads) = (c.clone(), reads.clone());
            tokio::spawn(async move { c.read(1, || counted(&reads)).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        doomed.abort();
        let got = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("the waiter is not left waiting")
            .unwrap();
        assert_eq!(got, 2, "it made the next read itself");
        assert!(c.slots.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn keys_do_not_share() {
        let c = Coalesce::<u8, usize>::default();
        let reads = AtomicUsize::new(0);
        let (a, b) = tokio::join!(c.read(1, || counted(&reads)), c.read(2, || counted(&reads)));
        assert_eq!(a + b, 3, "two reads, one per key");
    }
}
