//! Standby replicas: warm copies of partitions that other instances own,
//! kept by tailing their changelogs, so that a partition moving here after
//! a crash restores only the tail it missed (`kafka.num_standby`).
//!
//! ## Placement, from the group itself
//!
//! No cluster layer of our own: every few seconds the standby thread of a
//! processor reads its consumer group's description from the group
//! coordinator (the members and the partitions of the first input each
//! owns, as the assignor handed them out). Members are ordered by member
//! id into a ring; partition *p* owned by the member at position *i* has
//! its standbys on the `num_standby` members after it (fewer when the group
//! has fewer other members). Every instance computes the same placement
//! from the same description and keeps the copies that fall to it; an
//! instance finds itself by its consumer's `client.id`, which carries its
//! instance id. While the group is rebalancing the placement is left as
//! it was.
//!
//! ## The copy
//!
//! A standby copy *is* the partition's local store, `<state_dir>/<processor>/<p>`,
//! written exactly as a restore writes it: complete changelog batches only
//! (read committed), each with the changelog checkpoint. When the partition
//! is assigned here, the task claims it ([`Handoff::claim`]): the standby
//! thread closes its copy and the task opens the same store and restores
//! from its checkpoint — only what was written since. A copy that is no
//! longer placed here is closed and left on disk (the next restore of that
//! partition here starts from it).
//!
//! Delivery is unaffected: a standby never writes to Kafka, and the active
//! owner's restore always reads the changelog to its end.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use epitrace_ops::TaskMetrics;
use epitrace_state::{KvStore, RocksStore, StoreOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::groups::GroupList;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use crate::changelog::Batches;
use crate::config::KafkaConfig;
use crate::error::StreamError;
use crate::link::{LinkContext, LinkHooks};

/// Which partitions of a processor are open here, as the active task's or
/// as a standby copy: a store is open in one place at a time.
#[derive(Debug, Default)]
pub struct Handoff {
    state: Mutex<HandoffState>,
    released: Condvar,
}

#[derive(Debug, Default)]
struct HandoffState {
    /// Partitions the active task owns (or is restoring).
    active: BTreeSet<i32>,
    /// Partitions whose store the standby thread has open.
    standby: BTreeSet<i32>,
}

impl Handoff {
    fn lock(&self) -> MutexGuard<'_, HandoffState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The active task takes partition `p`: waits (at most `timeout`) until
    /// the standby thread has closed its copy. Returns whether it did.
    pub fn claim(&self, p: i32, timeout: Duration) -> bool {
        let mut state = self.lock();
        state.active.insert(p);
        let deadline = Instant::now() + timeout;
        while state.standby.contains(&p) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .released
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        true
    }

    /// The active task gave partition `p` up (its store is closed).
    pub fn release(&self, p: i32) {
        self.lock().active.remove(&p);
    }

    /// Partitions the standby thread has open that the task now claims.
    fn claimed(&self) -> Vec<i32> {
        let state = self.lock();
        state.standby.intersection(&state.active).copied().collect()
    }

    /// The standby thread may open `p` unless the task owns it.
    fn try_open(&self, p: i32) -> bool {
        let mut state = self.lock();
        if state.active.contains(&p) {
            return false;
        }
        state.standby.insert(p);
        true
    }

    /// The standby thread closed its copy of `p`.
    fn closed(&self, p: i32) {
        self.lock().standby.remove(&p);
        self.released.notify_all();
    }
}

/// What the standby thread of one processor needs.
#[derive(Clone)]
pub struct StandbySpec {
    /// The processor.
    pub processor: &'static str,
    /// Its consumer group.
    pub group: String,
    /// The `client.id` of this instance's member of the group.
    pub member_client_id: String,
    /// Its first input (the topic the group assigns).
    pub primary: String,
    /// Its changelog topic.
    pub changelog: String,
    /// Copies to keep of each partition across the group.
    pub replicas: usize,
    /// `<state_dir>/<processor>`.
    pub state_dir: PathBuf,
    /// Its stores.
    pub stores: Vec<&'static str>,
    /// Store tuning.
    pub store_options: StoreOptions,
}

/// A running standby thread; stopped and joined on drop.
pub struct Standby {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Standby {
    /// Starts keeping standby copies for `spec.processor`.
    ///
    /// # Errors
    /// [`StreamError::Kafka`] when its consumer cannot be created.
    pub fn start(
        spec: StandbySpec,
        kafka: &KafkaConfig,
        hooks: LinkHooks,
        handoff: Arc<Handoff>,
        metrics: TaskMetrics,
    ) -> Result<Self, StreamError> {
        let mut conf = kafka.consumer_config(&format!("{}-standby", spec.processor));
        conf.set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed")
            .set("statistics.interval.ms", "0");
        // Client errors are counted on the process's Kafka link, not logged
        // one by one (an outage must not flood the log).
        let consumer: BaseConsumer<LinkContext> =
            conf.create_with_context(LinkContext::new(hooks))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("standby-{}", spec.processor))
            .spawn(move || {
                let mut copies = Copies {
                    spec,
                    consumer,
                    handoff,
                    metrics,
                    open: BTreeMap::new(),
                };
                copies.run(&flag);
                copies.close_all();
            })
            .map_err(|e| StreamError::Admin(format!("starting the standby thread: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One open standby copy.
struct Copy {
    store: RocksStore,
    batches: Batches,
    /// The changelog offset after the last complete batch written.
    applied_to: i64,
}

struct Copies {
    spec: StandbySpec,
    consumer: BaseConsumer<LinkContext>,
    handoff: Arc<Handoff>,
    metrics: TaskMetrics,
    open: BTreeMap<i32, Copy>,
}

/// How often the group's description is read again.
const PLACEMENT_EVERY: Duration = Duration::from_secs(3);

impl Copies {
    fn run(&mut self, stop: &AtomicBool) {
        let mut placed_at: Option<Instant> = None;
        let mut applied = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let claimed = self.handoff.claimed();
            if !claimed.is_empty() {
                self.close(&claimed);
                self.reassign();
            }
            if placed_at.is_none_or(|t| t.elapsed() >= PLACEMENT_EVERY) {
                placed_at = Some(Instant::now());
                match self.placement() {
                    Ok(Some(wanted)) => self.place(&wanted),
                    Ok(None) => {}
                    Err(e) => {
                        debug!(processor = self.spec.processor, error = %e, "reading the group for standby placement");
                    }
                }
            }
            if self.open.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(msg)) => match apply(&mut self.open, &self.spec.changelog, &msg) {
                    Ok(n) => {
                        applied += n;
                        if n > 0 {
                            self.metrics.standby_applied(n);
                        }
                    }
                    Err(e) => {
                        warn!(processor = self.spec.processor, partition = msg.partition(), error = %e, "standby copy failed; dropping it");
                        let p = msg.partition();
                        self.close(&[p]);
                        self.reassign();
                    }
                },
                Some(Err(e)) => debug!(error = %e, "standby read"),
                None => {}
            }
        }
        debug!(
            processor = self.spec.processor,
            applied, "standby thread stopped"
        );
    }

    /// The partitions this instance should keep copies of, from the
    /// group's description; `None` while the group is not stable.
    fn placement(&self) -> Result<Option<BTreeSet<i32>>, StreamError> {
        let groups = self
            .consumer
            .fetch_group_list(Some(&self.spec.group), Duration::from_secs(5))?;
        Ok(placement_of(
            &groups,
            &self.spec.group,
            &self.spec.member_client_id,
            &self.spec.primary,
            self.spec.replicas,
        ))
    }

    /// Opens the copies newly placed here and closes those no longer.
    fn place(&mut self, wanted: &BTreeSet<i32>) {
        let gone: Vec<i32> = self
            .open
            .keys()
            .filter(|p| !wanted.contains(p))
            .copied()
            .collect();
        let mut changed = !gone.is_empty();
        self.close(&gone);
        for &p in wanted {
            if self.open.contains_key(&p) || !self.handoff.try_open(p) {
                continue;
            }
            match self.open_copy(p) {
                Ok(copy) => {
                    info!(
                        processor = self.spec.processor,
                        partition = p,
                        from = copy.applied_to,
                        "keeping a standby copy"
                    );
                    self.open.insert(p, copy);
                    changed = true;
                }
                Err(e) => {
                    warn!(processor = self.spec.processor, partition = p, error = %e, "cannot open a standby copy");
                    self.handoff.closed(p);
                }
            }
        }
        if changed {
            self.reassign();
        }
    }

    fn open_copy(&self, p: i32) -> Result<Copy, StreamError> {
        let dir = self.spec.state_dir.join(p.to_string());
        let store = RocksStore::open(&dir, &self.spec.stores, &self.spec.store_options)?;
        let checkpoint = store.offset(&self.spec.changelog, p)?.unwrap_or(0);
        let (_, high) =
            self.consumer
                .fetch_watermarks(&self.spec.changelog, p, Duration::from_secs(5))?;
        if checkpoint > high {
            // The changelog was recreated: the copy starts again.
            drop(store);
            std::fs::remove_dir_all(&dir).map_err(epitrace_state::StateError::from)?;
            let store = RocksStore::open(&dir, &self.spec.stores, &self.spec.store_options)?;
            return Ok(Copy {
                store,
                batches: Batches::default(),
                applied_to: 0,
            });
        }
        Ok(Copy {
            store,
            batches: Batches::default(),
            applied_to: checkpoint,
        })
    }

    /// Reads every open copy's changelog from its checkpoint (a batch half
    /// read is read again).
    fn reassign(&mut self) {
        let mut tpl = TopicPartitionList::new();
        for (&p, copy) in &mut self.open {
            copy.batches = Batches::default();
            if let Err(e) =
                tpl.add_partition_offset(&self.spec.changelog, p, Offset::Offset(copy.applied_to))
            {
                warn!(error = %e, "standby assignment");
            }
        }
        if let Err(e) = self.consumer.assign(&tpl) {
            warn!(processor = self.spec.processor, error = %e, "standby assignment");
        }
        self.metrics.standby(self.open.len());
    }

    fn close(&mut self, partitions: &[i32]) {
        for p in partitions {
            if let Some(copy) = self.open.remove(p) {
                if let Err(e) = copy.store.flush() {
                    warn!(partition = p, error = %e, "flushing a standby copy");
                }
                drop(copy);
                debug!(
                    processor = self.spec.processor,
                    partition = p,
                    "standby copy closed"
                );
            }
            self.handoff.closed(*p);
        }
        self.metrics.standby(self.open.len());
    }

    fn close_all(&mut self) {
        let all: Vec<i32> = self.open.keys().copied().collect();
        self.close(&all);
    }
}

/// Applies one changelog record to its copy; returns the records written
/// (a batch is written when its end marker is read).
fn apply(
    open: &mut BTreeMap<i32, Copy>,
    changelog: &str,
    msg: &rdkafka::message::BorrowedMessage<'_>,
) -> Result<u64, StreamError> {
    let p = msg.partition();
    let Some(copy) = open.get_mut(&p) else {
        return Ok(0);
    };
    let Some((mut ws, n)) = copy
        .batches
        .push(msg.key().unwrap_or_default(), msg.payload())?
    else {
        return Ok(0);
    };
    copy.applied_to = msg.offset() + 1;
    ws.set_offset(changelog, p, copy.applied_to);
    copy.store.write(ws)?;
    Ok(n)
}

/// The placement rule (see the module docs) on a group description: the
/// partitions of `primary` whose standbys fall to the member with
/// `client_id`, or `None` when the group is not stable or that member is
/// not in it.
#[must_use]
pub fn placement_of(
    groups: &GroupList,
    group: &str,
    client_id: &str,
    primary: &str,
    replicas: usize,
) -> Option<BTreeSet<i32>> {
    let g = groups.groups().iter().find(|g| g.name() == group)?;
    if g.state() != "Stable" {
        return None;
    }
    let mut members: Vec<(String, String, Vec<i32>)> = g
        .members()
        .iter()
        .map(|m| {
            let owned = m
                .assignment()
                .and_then(|a| assigned_partitions(a, primary))
                .unwrap_or_default();
            (m.id().to_owned(), m.client_id().to_owned(), owned)
        })
        .collect();
    members.sort();
    let ring: Vec<(&str, &[i32])> = members
        .iter()
        .map(|(_, c, owned)| (c.as_str(), owned.as_slice()))
        .collect();
    ring_placement(&ring, client_id, replicas)
}

/// The ring rule on members in ring order, each `(client id, partitions
/// owned)`: the partitions whose standbys fall to `me`. `None` when `me`
/// is not a member.
#[must_use]
pub fn ring_placement(
    members: &[(&str, &[i32])],
    me: &str,
    replicas: usize,
) -> Option<BTreeSet<i32>> {
    let mine = members.iter().position(|(c, _)| *c == me)?;
    let n = members.len();
    let mut out = BTreeSet::new();
    for (i, (_, owned)) in members.iter().enumerate() {
        if i == mine {
            continue;
        }
        // The members after the owner, in ring order, up to `replicas`.
        let distance = (mine + n - i) % n;
        if distance >= 1 && distance <= replicas.min(n - 1) {
            out.extend(owned.iter().copied());
        }
    }
    // Never a copy of a partition this member owns itself.
    if let Some((_, own)) = members.get(mine) {
        for p in *own {
            out.remove(p);
        }
    }
    Some(out)
}

/// The partitions of `topic` in a consumer-protocol assignment
/// (`version: i16`, then `[topic: string, partitions: [i32]]`, then user
/// data); `None` when the bytes do not parse.
#[must_use]
pub fn assigned_partitions(bytes: &[u8], topic: &str) -> Option<Vec<i32>> {
    let mut r = Reader(bytes);
    let _version = r.i16()?;
    let topics = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(r.i16()?).ok()?;
        let name = r.take(len)?;
        let count = r.i32()?;
        for _ in 0..count.max(0) {
            let p = r.i32()?;
            if name == topic.as_bytes() {
                out.push(p);
            }
        }
    }
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2)
            .and_then(|b| b.try_into().ok())
            .map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&i32::try_from(topics.len()).unwrap().to_be_bytes());
        for (t, ps) in topics {
            b.extend_from_slice(&i16::try_from(t.len()).unwrap().to_be_bytes());
            b.extend_from_slice(t.as_bytes());
            b.extend_from_slice(&i32::try_from(ps.len()).unwrap().to_be_bytes());
            for p in *ps {
                b.extend_from_slice(&p.to_be_bytes());
            }
        }
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b
    }

    #[test]
    fn assignments_parse_and_truncated_ones_do_not() {
        let bytes = assignment(&[("feeds.telecom", &[0, 3, 5]), ("other", &[1])]);
        assert_eq!(
            assigned_partitions(&bytes, "feeds.telecom"),
            Some(vec![0, 3, 5])
        );
        assert_eq!(assigned_partitions(&bytes, "other"), Some(vec![1]));
        assert_eq!(assigned_partitions(&bytes, "none"), Some(vec![]));
        assert_eq!(assigned_partitions(&bytes[..9], "feeds.telecom"), None);
        assert_eq!(assigned_partitions(&[], "feeds.telecom"), None);
    }

    #[test]
    fn the_ring_gives_each_partition_its_replicas_on_other_members() {
        let a: &[i32] = &[0, 1];
        let b: &[i32] = &[2, 3];
        let c: &[i32] = &[4, 5];
        let ring = [("a", a), ("b", b), ("c", c)];
        let of = |me, n| ring_placement(&ring, me, n).unwrap();
        assert_eq!(of("a", 1), BTreeSet::from([4, 5]));
        assert_eq!(of("b", 1), BTreeSet::from([0, 1]));
        assert_eq!(of("c", 1), BTreeSet::from([2, 3]));
        // Two replicas: every other member's partitions.
        assert_eq!(of("a", 2), BTreeSet::from([2, 3, 4, 5]));
        // More replicas than other members: capped, never a member's own.
        assert_eq!(of("a", 5), BTreeSet::from([2, 3, 4, 5]));
        assert_eq!(ring_placement(&ring, "d", 1), None);
        // Every partition has exactly `n` copies elsewhere.
        for n in 1..=2 {
            let mut copies = BTreeMap::<i32, usize>::new();
            for me in ["a", "b", "c"] {
                for p in of(me, n) {
                    *copies.entry(p).or_default() += 1;
                }
            }
            assert!(copies.values().all(|&k| k == n), "{copies:?}");
            assert_eq!(copies.len(), 6);
        }
        // Alone in the group: nothing to copy.
        assert_eq!(ring_placement(&[("a", a)], "a", 1), Some(BTreeSet::new()));
    }

    #[test]
    fn a_claim_waits_for_the_standby_to_close_its_copy() {
        let h = Arc::new(Handoff::default());
        assert!(h.try_open(3));
        assert!(!h.claim(3, Duration::from_millis(50)), "still open");
        let h2 = Arc::clone(&h);
        let closer = std::thread::spawn(move || {
            while h2.claimed() != vec![3] {
                std::thread::sleep(Duration::from_millis(5));
            }
            h2.closed(3);
        });
        assert!(h.claim(3, Duration::from_secs(5)));
        closer.join().unwrap();
        // Owned by the task: the standby may not open it.
        assert!(!h.try_open(3));
        h.release(3);
        assert!(h.try_open(3));
    }
}
