//! Channel presence (protocol extension `presence`): asking who is in a
//! channel, and watching its members change, across reconnects.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedMutexGuard};
use tokio::time::Instant;

use super::ConnectionState;
use super::members::Lane;
use super::shared::{Live, Shared, ask};
use crate::RequestError;
use crate::protocol::{Control, EXTENSION_PRESENCE, PresenceMember, PresenceSnapshot};

pub use super::members::PresenceEvent;

/// A watch of a channel's members, from [`Client::watch_presence`](super::Client::watch_presence).
///
/// It keeps the member set current as the server's changes arrive
/// ([`members`](Self::members)) and reports each change
/// ([`changed`](Self::changed)). Changes left unread do not pile up: past a
/// bound they collapse into one [`PresenceEvent::Reset`], so a watch that is
/// never read costs no more than its member set.
///
/// After a reconnect, once the channel is subscribed again, the client asks
/// the server for the channel's members again and the watch reports a
/// [`PresenceEvent::Reset`]; until then [`is_current`](Self::is_current) is
/// `false` and the member set is the last one known.
///
/// Dropping the watch stops it: when it was the client's last watch of the
/// channel, the server is told (`sl/presence` with `watch: false`) if a
/// connection is open.
///
/// ```no_run
/// # async fn run(client: sente_lite::Client) -> Result<(), sente_lite::RequestError> {
/// use sente_lite::client::PresenceEvent;
///
/// client.subscribe("room/lobby").await?;
/// let mut watch = client.watch_presence("room/lobby").await?;
/// println!("{} here", watch.members().len());
/// while let Some(change) = watch.changed().await {
///     match change {
///         PresenceEvent::Joined(member) => println!("{} is here", member.user_id),
///         PresenceEvent::Left(user) => println!("{user} left"),
///         PresenceEvent::Reset(members) => println!("{} here", members.len()),
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct PresenceWatch {
    shared: Arc<Shared>,
    channel: String,
    id: u64,
    wake: Arc<Notify>,
}

impl PresenceWatch {
    /// The channel watched.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The channel's members now, sorted by user id. Changes not read yet
    /// with [`changed`](Self::changed) are already part of it.
    pub fn members(&self) -> Vec<PresenceMember> {
        self.shared.presence().members(&self.channel)
    }

    /// Whether the server watches the channel for this client on the open
    /// connection, so that the member set follows every change. `false` while
    /// reconnecting, until the watch is re-established.
    pub fn is_current(&self) -> bool {
        self.shared.presence().is_live(&self.channel)
    }

    /// Waits for the next change of the channel's members. `None` once the
    /// client was disconnected (and every change was read).
    ///
    /// Cancel-safe: a change is taken only when returned.
    pub async fn changed(&mut self) -> Option<PresenceEvent> {
        loop {
            let woken = self.wake.notified();
            if let Some(change) = self.shared.presence().next_change(&self.channel, self.id) {
                return Some(change);
            }
            if self.shared.state() == ConnectionState::Closed {
                return None;
            }
            woken.await;
        }
    }
}

impl Drop for PresenceWatch {
    fn drop(&mut self) {
        let Some(lane) = self.shared.presence().remove_inbox(&self.channel, self.id) else {
            return;
        };
        // Best effort: without a runtime the server keeps sending diffs,
        // which are ignored, until the channel is left.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(stop_watch(
                Arc::clone(&self.shared),
                self.channel.clone(),
                lane,
            ));
        }
    }
}

impl fmt::Debug for PresenceWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceWatch")
            .field("channel", &self.channel)
            .field("current", &self.is_current())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The members of `channel`: the watch's when the client watches it,
    /// otherwise asked of the server without starting a watch.
    pub(crate) async fn presence_of(
        &self,
        channel: String,
        timeout: Duration,
    ) -> Result<PresenceSnapshot, RequestError> {
        let deadline = Instant::now() + timeout;
        let live = self.presence_ready(&channel, deadline, timeout).await?;
        let (lane, _turn) = self.take_lane(&channel, deadline, timeout).await?;
        let result = self.refresh(&live, &channel, deadline, timeout).await;
        self.presence().forget_if_unused(&channel, &lane);
        result.map(|members| PresenceSnapshot { members })
    }

    /// Starts watching `channel`: resolves once the member set is known.
    pub(crate) async fn watch_presence(
        self: &Arc<Self>,
        channel: String,
        timeout: Duration,
    ) -> Result<PresenceWatch, RequestError> {
        let deadline = Instant::now() + timeout;
        let live = self.presence_ready(&channel, deadline, timeout).await?;
        let (id, wake) = self.presence().add_inbox(&channel);
        // From here on, dropping the watch (an error, or the caller giving
        // up) undoes what was done.
        let watch = PresenceWatch {
            shared: Arc::clone(self),
            channel,
            id,
            wake,
        };
        let (_lane, turn) = self.take_lane(&watch.channel, deadline, timeout).await?;
        self.refresh(&live, &watch.channel, deadline, timeout)
            .await?;
        // The watch starts from the member set as it is now.
        self.presence().clear_inbox(&watch.channel, id);
        drop(turn);
        Ok(watch)
    }

    /// Watches `channel` again on the connection `live`, once it was
    /// subscribed again there, when the client still watches it.
    pub(crate) async fn rewatch(self: Arc<Self>, live: Live, channel: String) {
        if !self.presence().is_watched(&channel) {
            return;
        }
        if !offers_presence(&live) {
            tracing::warn!(target: "sente_lite", channel = %channel, "the server no longer offers presence: the channel's watch is not restored");
            return;
        }
        let timeout = self.settings.request_timeout;
        let deadline = Instant::now() + timeout;
        let Ok((lane, _turn)) = self.take_lane(&channel, deadline, timeout).await else {
            tracing::warn!(target: "sente_lite", channel = %channel, "restoring a presence watch waited too long");
            return;
        };
        if self.presence().is_watched(&channel) {
            match self.refresh(&live, &channel, deadline, timeout).await {
                Ok(_) => {
                    tracing::debug!(target: "sente_lite", channel = %channel, "presence watch restored");
                }
                // The connection is gone already: the next one restores it again.
                Err(RequestError::Closed) => {}
                Err(err) => {
                    tracing::warn!(target: "sente_lite", channel = %channel, error = %err, "restoring a presence watch failed");
                }
            }
        }
        self.presence().forget_if_unused(&channel, &lane);
    }

    /// The open connection, when it offers presence and no `sl/sub` of
    /// `channel` is unanswered on it (the server would not know it yet).
    async fn presence_ready(
        &self,
        channel: &str,
        deadline: Instant,
        total: Duration,
    ) -> Result<Live, RequestError> {
        let live = self.open_live(deadline, total).await?;
        if !offers_presence(&live) {
            return Err(RequestError::Unsupported {
                extension: EXTENSION_PRESENCE,
            });
        }
        tokio::time::timeout_at(deadline, live.subscribing.answered(channel))
            .await
            .map_err(|_| RequestError::Timeout(total))?;
        Ok(live)
    }

    /// Takes `channel`'s lane: no other presence request of the channel is
    /// under way while it is held.
    async fn take_lane(
        &self,
        channel: &str,
        deadline: Instant,
        total: Duration,
    ) -> Result<(Arc<Lane>, OwnedMutexGuard<()>), RequestError> {
        loop {
            let lane = self.presence().lane(channel);
            let turn = tokio::time::timeout_at(deadline, Arc::clone(&lane).lock_owned())
                .await
                .map_err(|_| RequestError::Timeout(total))?;
            // The entry may have been forgotten while we waited.
            if self.presence().lane_is(channel, &lane) {
                return Ok((lane, turn));
            }
        }
    }

    /// With the channel's lane held: the members of `channel`, from the
    /// watch when it is live, otherwise from the server, which starts
    /// watching when the client has watchers of the channel (they are told
    /// the new set).
    async fn refresh(
        &self,
        live: &Live,
        channel: &str,
        deadline: Instant,
        total: Duration,
    ) -> Result<Vec<PresenceMember>, RequestError> {
        let watch = {
            let presence = self.presence();
            if presence.is_live(channel) {
                return Ok(presence.members(channel));
            }
            presence.is_watched(channel)
        };
        if !watch {
            let snapshot: PresenceSnapshot =
                ask(&live.ctx, presence_frame(channel, false), deadline, total).await?;
            return Ok(snapshot.members);
        }
        let token = self.presence().begin(channel);
        match ask(&live.ctx, presence_frame(channel, true), deadline, total).await {
            Ok(snapshot) => {
                let mut presence = self.presence();
                if presence.finish(channel, token, snapshot) {
                    Ok(presence.members(channel))
                } else {
                    Err(RequestError::Closed)
                }
            }
            Err(err) => {
                self.presence().abandon(channel, token);
                Err(err)
            }
        }
    }
}

/// Tells the server to stop watching `channel` for us, when nobody watches it
/// again by the time the lane is free.
async fn stop_watch(shared: Arc<Shared>, channel: String, lane: Arc<Lane>) {
    let _turn = Arc::clone(&lane).lock_owned().await;
    if !shared.presence().lane_is(&channel, &lane) || shared.presence().is_watched(&channel) {
        return;
    }
    if let Some(live) = shared.live() {
        let timeout = shared.settings.request_timeout;
        let stopped: Result<PresenceSnapshot, RequestError> = ask(
            &live.ctx,
            presence_frame(&channel, false),
            Instant::now() + timeout,
            timeout,
        )
        .await;
        if let Err(err) = stopped {
            tracing::debug!(target: "sente_lite", channel = %channel, error = %err, "stopping a presence watch got no answer");
        }
    }
    shared.presence().forget_if_unused(&channel, &lane);
}

fn offers_presence(live: &Live) -> bool {
    live.handshake
        .extensions
        .iter()
        .any(|extension| extension == EXTENSION_PRESENCE)
}

fn presence_frame(channel: &str, watch: bool) -> impl FnOnce(crate::RequestId) -> Control {
    let channel = channel.to_owned();
    move |req_id| Control::Presence {
        req_id,
        channel,
        watch,
    }
}
