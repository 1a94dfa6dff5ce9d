//! The leader's decisions, as pure functions of what it read: who is live, what changed in
//! membership, which version number to take, who must acknowledge, whether a barrier is
//! complete or must be abandoned. The engine reads storage, calls these, and acts on the
//! answer; nothing here touches storage or a clock, so each rule is tested with hand-made rows.
//! The rules are those of docs/protocol.md, "Leader side".

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::coordinator::jobmodel::{Header, MemberRef, Phase};
use crate::membership::{Member, MemberState, Snapshot};

/// Backoff between failed computes of the job model.
const COMPUTE_BACKOFF_MIN: Duration = Duration::from_secs(1);
const COMPUTE_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The members to compute for: the rows storage's clock says are live, or every row while this
/// processor may not judge deaths (it could not itself reach storage for a whole liveness
/// timeout; see `may_judge_deaths`). Sorted by id.
pub(super) fn live_members(
    snapshot: &Snapshot,
    liveness: Duration,
    may_judge_deaths: bool,
) -> Vec<MemberRef> {
    let rows = if may_judge_deaths {
        snapshot.live(liveness)
    } else {
        snapshot.live(Duration::MAX)
    };
    rows.into_iter()
        .map(|m| MemberRef {
            id: m.processor_id.clone(),
            incarnation: m.state.incarnation.clone(),
        })
        .collect()
}

/// How the live members differ from the members the current version was computed for.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Change<'a> {
    /// Live but not published: a new processor, or a new incarnation of a published one (it
    /// restarted, or fenced itself and lost its work).
    pub joined: Vec<&'a MemberRef>,
    /// Published, and its row is gone: it left.
    pub left: Vec<&'a MemberRef>,
    /// Published, and its row is still there but not live: judged dead (or an earlier
    /// incarnation of a processor that is back under a new one).
    pub dead: Vec<&'a MemberRef>,
}

impl Change<'_> {
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty() && self.left.is_empty() && self.dead.is_empty()
    }
}

/// What changed between `published` (the document's members) and `live` (from
/// [`live_members`] over `snapshot`): any difference in (id, incarnation).
pub(super) fn membership_change<'a>(
    snapshot: &Snapshot,
    live: &'a [MemberRef],
    published: &'a [MemberRef],
) -> Change<'a> {
    let joined = live.iter().filter(|m| !published.contains(m)).collect();
    let (dead, left): (Vec<&MemberRef>, Vec<&MemberRef>) = published
        .iter()
        .filter(|m| !live.contains(m))
        .partition(|m| snapshot.members.iter().any(|r| r.processor_id == m.id));
    Change { joined, left, dead }
}

/// What an idle leader does after a scan.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum IdleStep {
    /// Compute a new version for the live members at once: the document's version was
    /// abandoned, or a recompute was asked for. A rebalance already being timed goes on.
    Recompute,
    /// Membership changed (or the job has no version yet): a rebalance starts. `settle`:
    /// someone joined, so wait for the debounce before computing, since more may follow.
    Rebalance { settle: bool },
    /// Nothing to compute: the leader may clean up dead rows and notification rows.
    Unchanged,
}

/// The IDLE row of the leader's state machine. With no live member there is nothing to
/// compute for.
pub(super) fn idle_step(
    doc_phase: Phase,
    recompute_asked: bool,
    live: &[MemberRef],
    change: &Change<'_>,
    debounce: Duration,
) -> IdleStep {
    if live.is_empty() {
        IdleStep::Unchanged
    } else if doc_phase == Phase::Abandoned || recompute_asked {
        IdleStep::Recompute
    } else if doc_phase == Phase::None || !change.is_empty() {
        IdleStep::Rebalance {
            settle: !change.joined.is_empty() && !debounce.is_zero(),
        }
    } else {
        IdleStep::Unchanged
    }
}

/// When a debounce that began at `started` ends, after the live members changed again at
/// `now`: one more debounce, but never past twice the debounce in all.
pub(super) fn settle_until(started: Instant, now: Instant, debounce: Duration) -> Instant {
    (now + debounce).min(started + debounce * 2)
}

/// The highest version any row reports, acknowledged or running: versions are numbered above
/// it, so numbering goes on above what containers still run after a reset.
pub(super) fn highest_reported(rows: &[Member]) -> u64 {
    rows.iter()
        .map(|m| m.state.acked.max(m.state.running))
        .max()
        .unwrap_or(0)
}

/// No live row reports a running container.
pub(super) fn nothing_running(rows: &[Member], live: &[MemberRef]) -> bool {
    let live_ids: BTreeSet<&str> = live.iter().map(|m| m.id.as_str()).collect();
    rows.iter()
        .filter(|m| live_ids.contains(m.processor_id.as_str()))
        .all(|m| m.state.running == 0)
}

/// The number the next compute takes: above the document's version and the version known
/// before a reset, and never below `lowest_unused` (numbers this leader took before, and the
/// floors raised by [`highest_reported`] and the checkpoints' generations).
pub(super) fn version_to_compute(doc_version: u64, version_floor: u64, lowest_unused: u64) -> u64 {
    (doc_version.max(version_floor) + 1).max(lowest_unused)
}

/// Who must acknowledge a version computed for `live`: every live processor, not only those
/// given work, since one losing all its work must still stop its container first.
pub(super) fn must_ack(live: &[MemberRef]) -> Vec<String> {
    live.iter().map(|m| m.id.clone()).collect()
}

/// Whether a computed version goes out `done` at once, with nobody owing an acknowledgement:
/// only the job's first version (the document holds none) while no live row reports a
/// running container. Containers start only on a `done` version, so none can run anywhere.
/// After a reset containers may still run, and the version takes the barrier.
pub(super) fn first_version(doc_phase: Phase, nothing_running: bool) -> bool {
    doc_phase == Phase::None && nothing_running
}

/// Whose notification rows the leader touches after publishing: everyone the version
/// concerns (`must_ack` and `members`) but itself, sorted, once each.
pub(super) fn to_notify(header: &Header, me: &str) -> Vec<String> {
    let mut ids: Vec<String> = header
        .must_ack
        .iter()
        .cloned()
        .chain(header.members.iter().map(|m| m.id.clone()))
        .filter(|id| id != me)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// How long to wait after the `failures`-th compute in a row failed: from a second, doubling,
/// up to a minute.
pub(super) fn compute_backoff(failures: u32) -> Duration {
    COMPUTE_BACKOFF_MIN
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(COMPUTE_BACKOFF_MAX)
}

/// Whether a member's row acknowledges version `v` of content `content`: a newer version, or
/// this one given for the same content. A row without a content id (written by a processor
/// that predates it) is taken on the version alone.
pub(super) fn acknowledged(state: &MemberState, v: u64, content: &str) -> bool {
    state.acked > v
        || (state.acked == v
            && state
                .acked_content
                .as_deref()
                .is_none_or(|acked| acked == content))
}

/// What the leader does with a `pending` version after a scan.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BarrierStep {
    /// Every `must_ack` row acknowledged this version and content, and no live processor
    /// outside `must_ack` runs a container: publish it `done`.
    Complete,
    /// Live processors have yet to acknowledge, and there is time left: remind them.
    Wait { waiting: Vec<String> },
    /// Publish it `abandoned`, then compute `next` (if it has members) at once.
    Abandon { why: Abandon, next: Next },
}

/// Why a version is abandoned, the first that applies.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Abandon {
    /// The barrier timed out with these live processors not acknowledging.
    TimedOut { waiting: Vec<String> },
    /// Live rows outside `must_ack` report a running container: processors the version was
    /// computed without (judged dead) whose paused containers are back. Completing it could
    /// let two containers run the same partitions.
    Back { back: Vec<String> },
    /// `must_ack` processors died or left (their rows are dead or gone): they hold nothing
    /// any more, so the next version leaves them out.
    Left { missing: Vec<String> },
}

/// The version computed after an abandoned one.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Next {
    /// Every live processor, except, after a timeout, the stragglers: they lose their work.
    pub members: Vec<MemberRef>,
    /// Every live processor, stragglers included: their containers may still run.
    pub must_ack: Vec<String>,
}

/// The BARRIER row of the leader's state machine, for the version `header` describes, given
/// the rows read (`rows`), the live members among them and whether the barrier timed out.
pub(super) fn barrier_step(
    header: &Header,
    rows: &[Member],
    live: &[MemberRef],
    timed_out: bool,
) -> BarrierStep {
    let live_ids: BTreeSet<&str> = live.iter().map(|m| m.id.as_str()).collect();
    let mut missing = Vec::new();
    let mut waiting = Vec::new();
    for id in &header.must_ack {
        match rows.iter().find(|m| &m.processor_id == id) {
            Some(m) if acknowledged(&m.state, header.version, &header.content) => {}
            Some(_) if live_ids.contains(id.as_str()) => waiting.push(id.clone()),
            _ => missing.push(id.clone()),
        }
    }
    let back: Vec<String> = rows
        .iter()
        .filter(|m| m.state.running != 0 && live_ids.contains(m.processor_id.as_str()))
        .filter(|m| !header.must_ack.contains(&m.processor_id))
        .map(|m| m.processor_id.clone())
        .collect();
    if missing.is_empty() && back.is_empty() {
        if waiting.is_empty() {
            return BarrierStep::Complete;
        }
        if !timed_out {
            return BarrierStep::Wait { waiting };
        }
    }
    let next = Next {
        members: live
            .iter()
            .filter(|m| !timed_out || !waiting.contains(&m.id))
            .cloned()
            .collect(),
        must_ack: must_ack(live),
    };
    let why = if timed_out {
        Abandon::TimedOut { waiting }
    } else if !back.is_empty() {
        Abandon::Back { back }
    } else {
        Abandon::Left { missing }
    };
    BarrierStep::Abandon { why, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::jobmodel::ModelDocument;
    use crate::storage::ETag;
    use time::OffsetDateTime;

    const LIVENESS: Duration = Duration::from_secs(10);

    fn member(id: &str) -> MemberRef {
        MemberRef {
            id: id.into(),
            incarnation: format!("{id}-1"),
        }
    }

    fn members(ids: &[&str]) -> Vec<MemberRef> {
        ids.iter().map(|id| member(id)).collect()
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A row last written `age` seconds before the newest one read.
    fn row(id: &str, age: i64, state: MemberState) -> Member {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_000);
        Member {
            partition: "members-0".into(),
            processor_id: id.into(),
            heartbeats: 1,
            server_time: now - time::Duration::seconds(age),
            observed_at: now,
            etag: ETag(format!("e-{id}")),
            state: MemberState {
                incarnation: format!("{id}-1"),
                ..state
            },
        }
    }

    fn fresh(id: &str) -> Member {
        row(id, 0, MemberState::default())
    }

    /// A row older than [`LIVENESS`]: its processor died.
    fn stale(id: &str) -> Member {
        row(id, 11, MemberState::default())
    }

    fn acked(v: u64, content: Option<&str>) -> MemberState {
        MemberState {
            acked: v,
            acked_content: content.map(str::to_owned),
            ..MemberState::default()
        }
    }

    fn running(v: u64) -> MemberState {
        MemberState {
            running: v,
            ..MemberState::default()
        }
    }

    /// A row `age` seconds old that acknowledged the version and content of `h`.
    fn acks(h: &Header, id: &str, age: i64) -> Member {
        row(id, age, acked(h.version, Some(&h.content)))
    }

    fn snapshot(rows: Vec<Member>) -> Snapshot {
        let server_now = rows.iter().map(|m| m.observed_at).max();
        Snapshot {
            members: rows,
            server_now,
        }
    }

    /// A pending version 7 that `must_ack` must acknowledge; its content id is random.
    fn pending(must_ack: &[&str]) -> Header {
        ModelDocument::new(7, "a", members(must_ack), ids(must_ack), "{}".into()).header
    }

    #[test]
    fn live_members_are_the_fresh_rows_unless_deaths_may_not_be_judged() {
        let s = snapshot(vec![fresh("b"), stale("c"), fresh("a")]);
        assert_eq!(live_members(&s, LIVENESS, true), members(&["a", "b"]));
        // After a stall everyone's row is old, but nobody is dead yet.
        assert_eq!(live_members(&s, LIVENESS, false), members(&["a", "b", "c"]));
    }

    #[test]
    fn a_change_names_who_joined_left_and_died() {
        let s = snapshot(vec![fresh("a"), stale("c"), fresh("d")]);
        let live = live_members(&s, LIVENESS, true);
        let published = members(&["a", "b", "c"]);
        let change = membership_change(&s, &live, &published);
        assert_eq!(change.joined, vec![&member("d")]);
        assert_eq!(change.left, vec![&member("b")]);
        assert_eq!(change.dead, vec![&member("c")]);
        assert!(membership_change(&s, &live, &live).is_empty());
    }

    #[test]
    fn a_new_incarnation_is_a_join_and_its_old_one_a_death() {
        let mut restarted = fresh("a");
        restarted.state.incarnation = "a-2".into();
        let s = snapshot(vec![restarted]);
        let live = live_members(&s, LIVENESS, true);
        let published = members(&["a"]);
        let change = membership_change(&s, &live, &published);
        assert_eq!(change.joined.len(), 1);
        assert_eq!(change.joined[0].incarnation, "a-2");
        assert_eq!(change.dead, vec![&member("a")]);
        assert!(change.left.is_empty());
    }

    #[test]
    fn an_idle_leader_settles_joins_and_computes_departures_at_once() {
        let s = snapshot(vec![fresh("a"), fresh("b")]);
        let live = live_members(&s, LIVENESS, true);
        let d = Duration::from_secs(2);
        let step = |phase, recompute, published: &[MemberRef], debounce| {
            idle_step(
                phase,
                recompute,
                &live,
                &membership_change(&s, &live, published),
                debounce,
            )
        };
        let same = members(&["a", "b"]);
        assert_eq!(step(Phase::Done, false, &same, d), IdleStep::Unchanged);
        // Someone joined: more may follow, so let it settle (unless there is no debounce).
        let fewer = members(&["a"]);
        assert_eq!(
            step(Phase::Done, false, &fewer, d),
            IdleStep::Rebalance { settle: true }
        );
        assert_eq!(
            step(Phase::Done, false, &fewer, Duration::ZERO),
            IdleStep::Rebalance { settle: false }
        );
        // Departures and deaths only: compute at once.
        let more = members(&["a", "b", "c"]);
        assert_eq!(
            step(Phase::Done, false, &more, d),
            IdleStep::Rebalance { settle: false }
        );
        // No version yet: compute, even for the same members.
        assert_eq!(
            step(Phase::None, false, &same, d),
            IdleStep::Rebalance { settle: false }
        );
        // Abandoned or asked for: recompute, whatever membership did.
        assert_eq!(step(Phase::Abandoned, false, &same, d), IdleStep::Recompute);
        assert_eq!(step(Phase::Done, true, &fewer, d), IdleStep::Recompute);
    }

    #[test]
    fn with_nobody_live_there_is_nothing_to_compute() {
        let s = snapshot(vec![stale("a")]);
        let live = live_members(&s, LIVENESS, true);
        let published = members(&["a"]);
        let change = membership_change(&s, &live, &published);
        assert!(!change.is_empty());
        for (phase, recompute) in [
            (Phase::Done, false),
            (Phase::Abandoned, true),
            (Phase::None, false),
        ] {
            let step = idle_step(phase, recompute, &live, &change, Duration::from_secs(2));
            assert_eq!(step, IdleStep::Unchanged);
        }
    }

    #[test]
    fn a_debounce_is_extended_by_changes_but_to_twice_its_length_at_most() {
        let d = Duration::from_secs(2);
        let started = Instant::now();
        assert_eq!(
            settle_until(started, started + d / 2, d),
            started + d + d / 2
        );
        assert_eq!(
            settle_until(started, started + d + d / 2, d),
            started + d * 2
        );
    }

    #[test]
    fn versions_are_numbered_above_everything_known() {
        let rows = vec![
            row("a", 0, acked(9, None)),
            row("b", 0, running(12)),
            fresh("c"),
        ];
        assert_eq!(highest_reported(&rows), 12);
        assert_eq!(highest_reported(&[]), 0);
        assert_eq!(version_to_compute(5, 0, 0), 6);
        assert_eq!(version_to_compute(5, 8, 0), 9);
        assert_eq!(version_to_compute(5, 8, 13), 13);
    }

    #[test]
    fn only_live_rows_count_as_running() {
        let rows = vec![fresh("a"), row("b", 11, running(3))];
        let s = snapshot(rows.clone());
        assert!(nothing_running(&rows, &live_members(&s, LIVENESS, true)));
        assert!(!nothing_running(&rows, &live_members(&s, LIVENESS, false)));
    }

    #[test]
    fn every_live_processor_must_acknowledge_and_only_a_first_version_skips_the_barrier() {
        assert_eq!(must_ack(&members(&["a", "b"])), ids(&["a", "b"]));
        assert!(first_version(Phase::None, true));
        // A reset: containers still run, so it takes the barrier.
        assert!(!first_version(Phase::None, false));
        assert!(!first_version(Phase::Done, true));
        assert!(!first_version(Phase::Abandoned, true));
    }

    #[test]
    fn everyone_concerned_but_the_leader_is_notified_once() {
        let mut header = pending(&["a", "c", "b"]);
        header.members = members(&["b", "d"]);
        assert_eq!(to_notify(&header, "a"), ids(&["b", "c", "d"]));
    }

    #[test]
    fn failed_computes_back_off_from_a_second_to_a_minute() {
        let secs: Vec<u64> = [1, 2, 3, 6, 7, 40]
            .map(|n| compute_backoff(n).as_secs())
            .into();
        assert_eq!(secs, vec![1, 2, 4, 32, 60, 60]);
    }

    #[test]
    fn an_acknowledgement_counts_only_for_the_content_it_was_given_for() {
        assert!(acknowledged(&acked(7, Some("a")), 7, "a"));
        assert!(!acknowledged(&acked(7, Some("b")), 7, "a"));
        assert!(!acknowledged(&acked(6, Some("a")), 7, "a"));
        // A later version acknowledged covers this one: its container stopped since.
        assert!(acknowledged(&acked(8, Some("z")), 7, "a"));
        // Rows of processors that predate content ids.
        assert!(acknowledged(&acked(7, None), 7, "a"));
    }

    /// [`barrier_step`] over `rows`, with the members live among them.
    fn step(h: &Header, rows: &[Member], timed_out: bool) -> BarrierStep {
        let live = live_members(&snapshot(rows.to_vec()), LIVENESS, true);
        barrier_step(h, rows, &live, timed_out)
    }

    fn wait(waiting: &[&str]) -> BarrierStep {
        BarrierStep::Wait {
            waiting: ids(waiting),
        }
    }

    /// Abandoned for `why`; the next version is for `next_members`, acknowledged by `must_ack`.
    fn abandon(why: Abandon, next_members: &[&str], must_ack: &[&str]) -> BarrierStep {
        BarrierStep::Abandon {
            why,
            next: Next {
                members: members(next_members),
                must_ack: ids(must_ack),
            },
        }
    }

    #[test]
    fn a_barrier_completes_when_every_must_ack_row_acknowledged_this_content() {
        let h = pending(&["a", "b"]);
        let rows = vec![acks(&h, "a", 0), acks(&h, "b", 0), fresh("x")];
        assert_eq!(step(&h, &rows, false), BarrierStep::Complete);
        // Complete wins over a timeout reached at the same scan.
        assert_eq!(step(&h, &rows, true), BarrierStep::Complete);
        // An acknowledgement of other content under the same number does not count.
        let rows = vec![acks(&h, "a", 0), row("b", 0, acked(7, Some("other")))];
        assert_eq!(step(&h, &rows, false), wait(&["b"]));
    }

    #[test]
    fn a_barrier_waits_for_live_stragglers_until_it_times_out() {
        let h = pending(&["a", "b", "c"]);
        let rows = vec![acks(&h, "a", 0), fresh("b"), fresh("c")];
        assert_eq!(step(&h, &rows, false), wait(&["b", "c"]));
        // Timed out: the stragglers lose their work but must still acknowledge the next one.
        let why = Abandon::TimedOut {
            waiting: ids(&["b", "c"]),
        };
        assert_eq!(
            step(&h, &rows, true),
            abandon(why, &["a"], &["a", "b", "c"])
        );
    }

    #[test]
    fn a_must_ack_processor_that_died_or_left_abandons_the_version_without_it() {
        let h = pending(&["a", "b", "c"]);
        // b died (its row is stale), c left (no row); a acknowledged.
        let rows = vec![acks(&h, "a", 0), stale("b")];
        let why = Abandon::Left {
            missing: ids(&["b", "c"]),
        };
        assert_eq!(step(&h, &rows, false), abandon(why, &["a"], &["a"]));
        // A dead row that acknowledged counts: its container stopped before it died.
        let h = pending(&["a", "b"]);
        let rows = vec![acks(&h, "a", 0), acks(&h, "b", 11)];
        assert_eq!(step(&h, &rows, false), BarrierStep::Complete);
    }

    #[test]
    fn a_judged_dead_processor_back_with_a_running_container_abandons_the_version() {
        // Everyone in must_ack acknowledged, but z (left out, judged dead) runs version 6.
        let h = pending(&["a"]);
        let rows = vec![acks(&h, "a", 0), row("z", 0, running(6))];
        let back = || Abandon::Back { back: ids(&["z"]) };
        assert_eq!(
            step(&h, &rows, false),
            abandon(back(), &["a", "z"], &["a", "z"])
        );
        // Back, and b died: computed again with the one back and without the dead one.
        let h = pending(&["a", "b"]);
        let rows = vec![acks(&h, "a", 0), stale("b"), row("z", 0, running(6))];
        let BarrierStep::Abandon { why, next } = step(&h, &rows, false) else {
            panic!("not abandoned");
        };
        assert_eq!(why, back());
        assert_eq!(next.members, members(&["a", "z"]));
        // A row outside must_ack that runs nothing, or is not live, does not count.
        let h = pending(&["a"]);
        let rows = vec![acks(&h, "a", 0), fresh("y"), row("z", 11, running(6))];
        assert_eq!(step(&h, &rows, false), BarrierStep::Complete);
    }

    #[test]
    fn a_timeout_leaves_nobody_to_compute_for_when_everyone_live_straggled() {
        let h = pending(&["a"]);
        let rows = vec![fresh("a")];
        let BarrierStep::Abandon { why, next } = step(&h, &rows, true) else {
            panic!("not abandoned");
        };
        assert_eq!(
            why,
            Abandon::TimedOut {
                waiting: ids(&["a"])
            }
        );
        assert!(next.members.is_empty());
        assert_eq!(next.must_ack, ids(&["a"]));
    }
}
