//! Presence watchers: the connections that asked for a channel's presence
//! changes, and the diffs they are sent, gathered over a short window so that
//! a storm of joins costs each watcher a few frames, not one per join.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::codec::ControlFrames;
use crate::engine::PresenceChange;
use crate::protocol::{Control, PresenceDiff, PresenceMember, UserId};
use crate::{ConnId, Ctx};

use super::hub::{Shared, lock};

/// How long changes are gathered before they are sent.
pub(crate) const PRESENCE_WINDOW: Duration = Duration::from_millis(100);

/// The most users one `sl/presence-diff` frame names.
pub(crate) const MAX_DIFF_USERS: usize = 500;

/// Every watched channel of this server.
#[derive(Default)]
pub(crate) struct Watchers {
    channels: Mutex<HashMap<String, Watched>>,
}

#[derive(Default)]
struct Watched {
    watchers: HashMap<ConnId, Ctx>,
    /// Each changed user's state at the end of the window: a member, or
    /// `None` for gone. At most one entry per user, so it is bounded by the
    /// channel's membership.
    pending: BTreeMap<UserId, Option<PresenceMember>>,
    flush_scheduled: bool,
}

impl Watchers {
    /// `ctx` receives `channel`'s presence diffs from now on.
    pub(crate) fn watch(&self, channel: &str, ctx: &Ctx) {
        lock(&self.channels)
            .entry(channel.to_owned())
            .or_default()
            .watchers
            .insert(ctx.conn_id(), ctx.clone());
    }

    /// `conn` no longer watches `channel`.
    pub(crate) fn unwatch(&self, channel: &str, conn: ConnId) {
        let mut channels = lock(&self.channels);
        if let Some(watched) = channels.get_mut(channel) {
            watched.watchers.remove(&conn);
            if watched.watchers.is_empty() && !watched.flush_scheduled {
                channels.remove(channel);
            }
        }
    }

    /// Notes a change of `channel`'s presence for its watchers here.
    pub(crate) fn changed(&self, shared: &Arc<Shared>, channel: &str, change: PresenceChange) {
        let mut channels = lock(&self.channels);
        let Some(watched) = channels.get_mut(channel) else {
            return;
        };
        match change {
            PresenceChange::Joined(member) => {
                watched.pending.insert(member.user_id.clone(), Some(member));
            }
            PresenceChange::Left(user) => {
                watched.pending.insert(user, None);
            }
        }
        if watched.flush_scheduled {
            return;
        }
        watched.flush_scheduled = true;
        drop(channels);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.flush(channel);
            return;
        };
        let shared: Weak<Shared> = Arc::downgrade(shared);
        let channel = channel.to_owned();
        runtime.spawn(async move {
            tokio::time::sleep(PRESENCE_WINDOW).await;
            if let Some(shared) = shared.upgrade() {
                shared.watchers.flush(&channel);
            }
        });
    }

    /// Sends what changed in `channel` to its watchers.
    fn flush(&self, channel: &str) {
        let mut channels = lock(&self.channels);
        let Some(watched) = channels.get_mut(channel) else {
            return;
        };
        watched.flush_scheduled = false;
        let pending = std::mem::take(&mut watched.pending);
        if watched.watchers.is_empty() {
            channels.remove(channel);
            return;
        }
        let changes: Vec<_> = pending.into_iter().collect();
        for chunk in changes.chunks(MAX_DIFF_USERS) {
            let mut diff = PresenceDiff::default();
            for (user, state) in chunk {
                match state {
                    Some(member) => diff.joined.push(member.clone()),
                    None => diff.left.push(user.clone()),
                }
            }
            let control = Control::PresenceDiff {
                channel: channel.to_owned(),
                diff,
            };
            let mut frames = ControlFrames::new(&control);
            // Sent under the lock: each watcher gets a channel's diffs in order.
            for ctx in watched.watchers.values() {
                let _ = ctx.send_message(frames.get(ctx.codec()));
            }
        }
    }
}
