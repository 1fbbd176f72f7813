//! The members of the channels a client watches: the set each watched channel
//! keeps, diffs applied in the protocol's order (after the snapshot they
//! follow, `left` before `joined`), and the changes waiting for each watcher,
//! collapsed when a watcher does not keep up.
//!
//! Everything here is synchronous: the client's connection applies diffs as
//! it reads them, and the request that asked for a snapshot applies it when
//! the reply comes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::protocol::{PresenceDiff, PresenceMember, PresenceSnapshot, UserId};

/// Changes a watcher may leave unread before they are collapsed into one
/// [`PresenceEvent::Reset`].
pub(crate) const MAX_PENDING: usize = 256;

/// Serialises the presence requests of one channel: a watch started, a watch
/// stopped and a snapshot asked for go to the server one at a time, so that
/// the server never sees them out of order.
pub(crate) type Lane = tokio::sync::Mutex<()>;

/// A change to a watched channel's members, as
/// [`PresenceWatch::changed`](super::PresenceWatch::changed) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// A user became a member, or a member's `info` changed.
    Joined(PresenceMember),
    /// A user is no longer a member.
    Left(UserId),
    /// The whole member set, sorted by user id: after the watch was
    /// re-established on a new connection, or when more changes were waiting
    /// than a watcher may leave unread (they are replaced by this one).
    Reset(Vec<PresenceMember>),
}

/// A channel's members, by user id.
#[derive(Debug, Default)]
pub(crate) struct Members(BTreeMap<UserId, PresenceMember>);

impl Members {
    /// Replaces every member with a snapshot's.
    pub(crate) fn reset(&mut self, snapshot: PresenceSnapshot) {
        self.0 = snapshot
            .members
            .into_iter()
            .map(|member| (member.user_id.clone(), member))
            .collect();
    }

    /// Applies a diff, `left` first, then `joined` (a known member is
    /// replaced), and appends what actually changed to `changes`.
    pub(crate) fn apply(&mut self, diff: PresenceDiff, changes: &mut Vec<PresenceEvent>) {
        for user in diff.left {
            if self.0.remove(&user).is_some() {
                changes.push(PresenceEvent::Left(user));
            }
        }
        for member in diff.joined {
            if self.0.get(&member.user_id) != Some(&member) {
                self.0.insert(member.user_id.clone(), member.clone());
                changes.push(PresenceEvent::Joined(member));
            }
        }
    }

    /// Every member, sorted by user id.
    pub(crate) fn list(&self) -> Vec<PresenceMember> {
        self.0.values().cloned().collect()
    }
}

/// Where a watched channel's watch stands on the current connection.
#[derive(Debug)]
enum Phase {
    /// The server does not watch the channel for us (no connection yet, the
    /// connection was lost, or nobody watches any more): diffs are ignored.
    Idle,
    /// A `sl/presence` with `watch: true` is on its way: diffs wait for its snapshot.
    Asking {
        /// Which request; a reply to another one is not applied.
        token: u64,
        /// Diffs that arrived before the snapshot, applied after it in order.
        early: Vec<PresenceDiff>,
    },
    /// The snapshot was applied: diffs apply as they come.
    Live,
}

/// The changes one watcher has not read yet.
#[derive(Debug)]
struct Inbox {
    events: VecDeque<PresenceEvent>,
    /// The next change to read is the whole member set (a [`PresenceEvent::Reset`]).
    reset: bool,
    wake: Arc<Notify>,
}

impl Inbox {
    fn push(&mut self, event: PresenceEvent) {
        if self.reset {
            // The reset read next carries this change too.
        } else if self.events.len() >= MAX_PENDING {
            self.events.clear();
            self.reset = true;
        } else {
            self.events.push_back(event);
        }
        self.wake.notify_one();
    }

    fn reset(&mut self) {
        self.events.clear();
        self.reset = true;
        self.wake.notify_one();
    }
}

/// One channel that is watched, or that a presence request is using.
#[derive(Debug)]
struct Watched {
    members: Members,
    phase: Phase,
    inboxes: BTreeMap<u64, Inbox>,
    lane: Arc<Lane>,
}

impl Watched {
    fn new() -> Self {
        Self {
            members: Members::default(),
            phase: Phase::Idle,
            inboxes: BTreeMap::new(),
            lane: Arc::new(Lane::new(())),
        }
    }
}

/// The channels a client watches (or asks the presence of), with their
/// member sets and their watchers' unread changes.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    channels: HashMap<String, Watched>,
    next_token: u64,
    next_inbox: u64,
}

impl Registry {
    /// Adds a watcher of `channel`: its id, and what wakes it when a change comes.
    pub(crate) fn add_inbox(&mut self, channel: &str) -> (u64, Arc<Notify>) {
        self.next_inbox += 1;
        let id = self.next_inbox;
        let wake = Arc::new(Notify::new());
        self.entry(channel).inboxes.insert(
            id,
            Inbox {
                events: VecDeque::new(),
                reset: false,
                wake: Arc::clone(&wake),
            },
        );
        (id, wake)
    }

    /// Removes a watcher. When it was the last one and the server may be
    /// watching the channel for us, returns the channel's lane: the caller
    /// tells the server to stop (diffs are ignored from now on).
    pub(crate) fn remove_inbox(&mut self, channel: &str, id: u64) -> Option<Arc<Lane>> {
        let watched = self.channels.get_mut(channel)?;
        watched.inboxes.remove(&id);
        if !watched.inboxes.is_empty() {
            return None;
        }
        if matches!(watched.phase, Phase::Idle) {
            // Nobody uses it: forget it now, unless a request is under way
            // (which forgets it when it ends).
            if watched.lane.try_lock().is_ok() {
                self.channels.remove(channel);
            }
            return None;
        }
        watched.phase = Phase::Idle;
        Some(Arc::clone(&watched.lane))
    }

    /// The lane of `channel`, keeping an entry for it until [`Registry::forget_if_unused`].
    pub(crate) fn lane(&mut self, channel: &str) -> Arc<Lane> {
        Arc::clone(&self.entry(channel).lane)
    }

    /// Whether `lane` is still `channel`'s (the entry was not forgotten and made anew).
    pub(crate) fn lane_is(&self, channel: &str, lane: &Arc<Lane>) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|watched| Arc::ptr_eq(&watched.lane, lane))
    }

    /// Forgets `channel` when it has no watcher (and is still the entry of `lane`).
    pub(crate) fn forget_if_unused(&mut self, channel: &str, lane: &Arc<Lane>) {
        if self.lane_is(channel, lane) && !self.is_watched(channel) {
            self.channels.remove(channel);
        }
    }

    /// Whether `channel` has watchers.
    pub(crate) fn is_watched(&self, channel: &str) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|watched| !watched.inboxes.is_empty())
    }

    /// Whether the server watches `channel` for us and its snapshot was applied.
    pub(crate) fn is_live(&self, channel: &str) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|watched| matches!(watched.phase, Phase::Live))
    }

    /// The members of `channel`, sorted by user id.
    pub(crate) fn members(&self, channel: &str) -> Vec<PresenceMember> {
        self.channels
            .get(channel)
            .map(|watched| watched.members.list())
            .unwrap_or_default()
    }

    /// A watch request is about to go out: diffs wait for its snapshot.
    /// Returns the token its reply is applied with.
    pub(crate) fn begin(&mut self, channel: &str) -> u64 {
        self.next_token += 1;
        let token = self.next_token;
        self.entry(channel).phase = Phase::Asking {
            token,
            early: Vec::new(),
        };
        token
    }

    /// Applies the snapshot answering the watch request `token`, then the
    /// diffs that arrived before it, and tells every watcher (a
    /// [`PresenceEvent::Reset`]). `false` when the request no longer counts
    /// (its connection was lost, or nobody watches any more).
    pub(crate) fn finish(&mut self, channel: &str, token: u64, snapshot: PresenceSnapshot) -> bool {
        let Some(watched) = self.channels.get_mut(channel) else {
            return false;
        };
        let early = match &mut watched.phase {
            Phase::Asking {
                token: asked,
                early,
            } if *asked == token => std::mem::take(early),
            _ => return false,
        };
        watched.members.reset(snapshot);
        let mut ignored = Vec::new();
        for diff in early {
            watched.members.apply(diff, &mut ignored);
        }
        watched.phase = Phase::Live;
        for inbox in watched.inboxes.values_mut() {
            inbox.reset();
        }
        true
    }

    /// The watch request `token` failed: the channel is not watched on this connection.
    pub(crate) fn abandon(&mut self, channel: &str, token: u64) {
        if let Some(watched) = self.channels.get_mut(channel)
            && matches!(watched.phase, Phase::Asking { token: asked, .. } if asked == token)
        {
            watched.phase = Phase::Idle;
        }
    }

    /// A `sl/presence-diff` arrived: applied now, kept for the snapshot on its
    /// way, or ignored when the channel is not watched.
    pub(crate) fn diff(&mut self, channel: &str, diff: PresenceDiff) {
        let Some(watched) = self.channels.get_mut(channel) else {
            tracing::debug!(target: "sente_lite", channel, "presence diff for a channel not watched");
            return;
        };
        match &mut watched.phase {
            Phase::Idle => {
                tracing::debug!(target: "sente_lite", channel, "presence diff for a channel not watched");
            }
            Phase::Asking { early, .. } => early.push(diff),
            Phase::Live => {
                let mut changes = Vec::new();
                watched.members.apply(diff, &mut changes);
                for inbox in watched.inboxes.values_mut() {
                    for change in &changes {
                        inbox.push(change.clone());
                    }
                }
            }
        }
    }

    /// The next change watcher `id` has not read, if any.
    pub(crate) fn next_change(&mut self, channel: &str, id: u64) -> Option<PresenceEvent> {
        let watched = self.channels.get_mut(channel)?;
        let inbox = watched.inboxes.get_mut(&id)?;
        if std::mem::take(&mut inbox.reset) {
            return Some(PresenceEvent::Reset(watched.members.list()));
        }
        inbox.events.pop_front()
    }

    /// Forgets what watcher `id` has not read (it starts from the member set as it is).
    pub(crate) fn clear_inbox(&mut self, channel: &str, id: u64) {
        if let Some(inbox) = self
            .channels
            .get_mut(channel)
            .and_then(|watched| watched.inboxes.get_mut(&id))
        {
            inbox.events.clear();
            inbox.reset = false;
        }
    }

    /// The server no longer watches `channel` for us (we unsubscribed from it).
    pub(crate) fn unwatched(&mut self, channel: &str) {
        if let Some(watched) = self.channels.get_mut(channel) {
            watched.phase = Phase::Idle;
        }
    }

    /// The connection was lost, and every watch with it.
    pub(crate) fn connection_lost(&mut self) {
        for watched in self.channels.values_mut() {
            watched.phase = Phase::Idle;
        }
    }

    /// Wakes every watcher (the client stopped).
    pub(crate) fn wake_all(&self) {
        for watched in self.channels.values() {
            for inbox in watched.inboxes.values() {
                inbox.wake.notify_one();
            }
        }
    }

    fn entry(&mut self, channel: &str) -> &mut Watched {
        self.channels
            .entry(channel.to_owned())
            .or_insert_with(Watched::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user: &str, info: Option<&str>) -> PresenceMember {
        PresenceMember {
            user_id: user.into(),
            info: info.map(|name| serde_json::json!({ "name": name })),
        }
    }

    fn snapshot(members: &[PresenceMember]) -> PresenceSnapshot {
        PresenceSnapshot {
            members: members.to_vec(),
        }
    }

    fn diff(joined: &[PresenceMember], left: &[&str]) -> PresenceDiff {
        PresenceDiff {
            joined: joined.to_vec(),
            left: left.iter().map(|user| UserId::from(*user)).collect(),
        }
    }

    fn ids(members: &[PresenceMember]) -> Vec<&str> {
        members.iter().map(|m| m.user_id.0.as_str()).collect()
    }

    fn drain(registry: &mut Registry, channel: &str, id: u64) -> Vec<PresenceEvent> {
        std::iter::from_fn(|| registry.next_change(channel, id)).collect()
    }

    /// A registry watching `room/a` with one watcher, live on `members`.
    fn live(members: &[PresenceMember]) -> (Registry, u64) {
        let mut registry = Registry::default();
        let (id, _) = registry.add_inbox("room/a");
        let token = registry.begin("room/a");
        assert!(registry.finish("room/a", token, snapshot(members)));
        registry.clear_inbox("room/a", id);
        (registry, id)
    }

    #[test]
    fn left_applies_before_joined_and_a_known_member_is_replaced() {
        let mut members = Members::default();
        members.reset(snapshot(&[member("ada", Some("Ada")), member("bob", None)]));
        let mut changes = Vec::new();
        // bob leaves and comes back in one diff: he stays, with his new info.
        members.apply(
            diff(
                &[member("bob", Some("Bob")), member("ada", Some("Ada L."))],
                &["bob", "cy"],
            ),
            &mut changes,
        );
        assert_eq!(
            members.list(),
            vec![member("ada", Some("Ada L.")), member("bob", Some("Bob"))]
        );
        assert_eq!(
            changes,
            vec![
                PresenceEvent::Left("bob".into()),
                PresenceEvent::Joined(member("bob", Some("Bob"))),
                PresenceEvent::Joined(member("ada", Some("Ada L."))),
            ],
            "an unknown user leaving changes nothing"
        );
        changes.clear();
        members.apply(diff(&[member("ada", Some("Ada L."))], &[]), &mut changes);
        assert!(changes.is_empty(), "the same entry again is no change");
    }

    #[test]
    fn members_are_sorted_by_user_id() {
        let mut members = Members::default();
        members.reset(snapshot(&[member("cy", None), member("ada", None)]));
        let mut changes = Vec::new();
        members.apply(diff(&[member("bob", None)], &[]), &mut changes);
        assert_eq!(ids(&members.list()), ["ada", "bob", "cy"]);
    }

    #[test]
    fn diffs_before_the_snapshot_apply_after_it() {
        let mut registry = Registry::default();
        let (id, _) = registry.add_inbox("room/a");
        let token = registry.begin("room/a");
        // Sent by the server after its snapshot, read before the reply.
        registry.diff("room/a", diff(&[member("cy", None)], &["ada"]));
        registry.diff("room/a", diff(&[member("dan", None)], &["cy"]));
        assert!(
            registry.members("room/a").is_empty(),
            "nothing applies before the snapshot"
        );
        assert!(!registry.is_live("room/a"));
        assert!(registry.finish(
            "room/a",
            token,
            snapshot(&[member("ada", None), member("bob", None)])
        ));
        assert!(registry.is_live("room/a"));
        assert_eq!(ids(&registry.members("room/a")), ["bob", "dan"]);
        assert_eq!(
            drain(&mut registry, "room/a", id),
            vec![PresenceEvent::Reset(registry.members("room/a"))]
        );
        // Later diffs apply at once and reach the watcher.
        registry.diff("room/a", diff(&[member("eve", None)], &["bob"]));
        assert_eq!(
            drain(&mut registry, "room/a", id),
            vec![
                PresenceEvent::Left("bob".into()),
                PresenceEvent::Joined(member("eve", None)),
            ]
        );
    }

    #[test]
    fn a_stale_or_abandoned_request_does_not_apply() {
        let mut registry = Registry::default();
        let (_id, _) = registry.add_inbox("room/a");
        let first = registry.begin("room/a");
        let second = registry.begin("room/a");
        assert!(!registry.finish("room/a", first, snapshot(&[member("old", None)])));
        registry.abandon("room/a", first);
        assert!(
            !registry.is_live("room/a"),
            "abandoning another request changes nothing"
        );
        registry.diff("room/a", diff(&[member("bob", None)], &[]));
        assert!(registry.finish("room/a", second, snapshot(&[member("ada", None)])));
        assert_eq!(ids(&registry.members("room/a")), ["ada", "bob"]);

        let third = registry.begin("room/a");
        registry.connection_lost();
        assert!(!registry.finish("room/a", third, snapshot(&[])));
        registry.diff("room/a", diff(&[member("cy", None)], &[]));
        assert_eq!(
            ids(&registry.members("room/a")),
            ["ada", "bob"],
            "an idle channel ignores diffs"
        );
    }

    #[test]
    fn every_watcher_sees_every_change() {
        let (mut registry, first) = live(&[member("ada", None)]);
        let (second, _) = registry.add_inbox("room/a");
        registry.diff("room/a", diff(&[], &["ada"]));
        for id in [first, second] {
            assert_eq!(
                drain(&mut registry, "room/a", id),
                vec![PresenceEvent::Left("ada".into())]
            );
        }
    }

    #[test]
    fn unread_changes_collapse_into_one_reset() {
        let (mut registry, id) = live(&[]);
        for n in 0..MAX_PENDING + 10 {
            registry.diff("room/a", diff(&[member(&format!("u{n:04}"), None)], &[]));
        }
        let changes = drain(&mut registry, "room/a", id);
        assert_eq!(
            changes.len(),
            1,
            "one reset instead of {} changes",
            MAX_PENDING + 10
        );
        match &changes[0] {
            PresenceEvent::Reset(members) => assert_eq!(members.len(), MAX_PENDING + 10),
            other => panic!("expected a reset, got {other:?}"),
        }
        // Read up: changes queue again.
        registry.diff("room/a", diff(&[], &["u0000"]));
        assert_eq!(
            drain(&mut registry, "room/a", id),
            vec![PresenceEvent::Left("u0000".into())]
        );
    }

    #[test]
    fn a_reconnect_resets_every_watcher() {
        let (mut registry, id) = live(&[member("ada", None)]);
        registry.diff("room/a", diff(&[member("bob", None)], &[]));
        registry.connection_lost();
        assert!(!registry.is_live("room/a"));
        let token = registry.begin("room/a");
        assert!(registry.finish("room/a", token, snapshot(&[member("cy", None)])));
        assert_eq!(
            drain(&mut registry, "room/a", id),
            vec![PresenceEvent::Reset(vec![member("cy", None)])],
            "what was unread is replaced by the fresh set"
        );
    }

    #[test]
    fn the_last_watcher_gone_stops_the_watch() {
        let (mut registry, first) = live(&[]);
        let (second, _) = registry.add_inbox("room/a");
        assert!(registry.remove_inbox("room/a", first).is_none());
        assert!(registry.is_live("room/a"));
        let lane = registry
            .remove_inbox("room/a", second)
            .expect("the server watches: it must be told to stop");
        assert!(!registry.is_live("room/a"), "diffs are ignored from now on");
        assert!(registry.lane_is("room/a", &lane));
        registry.forget_if_unused("room/a", &lane);
        assert!(!registry.lane_is("room/a", &lane));

        // An idle channel's last watcher leaves nothing to stop, and is forgotten.
        let mut registry = Registry::default();
        let (id, _) = registry.add_inbox("room/b");
        let lane = registry.lane("room/b");
        assert!(registry.remove_inbox("room/b", id).is_none());
        assert!(!registry.lane_is("room/b", &lane));
    }
}
