//! The server's `sl/resub`: it ended a subscription whose publications may
//! have been missed, and the client subscribes again from the largest
//! position it holds, exactly as after a reconnect (what was missed is
//! replayed, or the gap is reported), then watches the channel's presence
//! again when it did.

use std::sync::Arc;

use tokio::time::Instant;
use tracing::Instrument as _;

use super::shared::{Live, Shared, ask};
use crate::protocol::Control;
use crate::{Ctx, RequestError};

impl Shared {
    /// The server ended our subscription to `channel` on the connection of
    /// `ctx` (`sl/resub`): subscribes again when the channel is still wanted.
    pub(crate) fn resubscribe_asked(self: &Arc<Self>, ctx: &Ctx, channel: String) {
        // The server's watch of the channel ended with the subscription.
        self.presence().unwatched(&channel);
        if self.wanted(&channel).is_none() {
            tracing::debug!(target: "sente_lite", channel = %channel, "the server ended a subscription this client does not keep");
            return;
        }
        let Some(live) = self
            .live()
            .filter(|live| live.ctx.conn_id() == ctx.conn_id())
        else {
            // That connection is gone: the next one restores the channel.
            return;
        };
        tracing::debug!(target: "sente_lite", channel = %channel, "the server asks to subscribe again");
        tokio::spawn(
            Arc::clone(self)
                .subscribe_again(live, channel)
                .in_current_span(),
        );
    }

    /// Subscribes to `channel` again on `live`, from the largest position
    /// seen, once every `sl/sub` of it still unanswered was answered (an
    /// answer may move the position).
    async fn subscribe_again(self: Arc<Self>, live: Live, channel: String) {
        let timeout = self.settings.request_timeout;
        let deadline = Instant::now() + timeout;
        if tokio::time::timeout_at(deadline, live.subscribing.answered(&channel))
            .await
            .is_err()
        {
            tracing::warn!(target: "sente_lite", channel = %channel, "an earlier subscribe of the channel is still unanswered");
        }
        // Left meanwhile: nothing to do.
        let Some(since) = self.wanted(&channel) else {
            return;
        };
        let result = self
            .subscribe_on(&live, &channel, since, false, deadline, timeout)
            .await;
        match &result {
            Ok(reply) => {
                tracing::debug!(target: "sente_lite", channel = %channel, recovered = reply.recovered, "subscribed again, as the server asked");
                if self.wanted(&channel).is_none() {
                    // Left while the subscribe was on its way: leave again.
                    self.leave_quietly(&live, channel.clone()).await;
                }
            }
            // The connection is gone already: the next one restores it again.
            Err(RequestError::Closed) => return,
            Err(RequestError::Remote(err)) => {
                tracing::warn!(target: "sente_lite", channel = %channel, code = %err.code, message = %err.message, "the server refused to subscribe again");
            }
            Err(err) => {
                tracing::warn!(target: "sente_lite", channel = %channel, error = %err, "subscribing again got no answer");
            }
        }
        if let Some(callback) = &self.settings.on_resubscribe {
            callback(&channel, &result);
        }
    }

    /// Sends `sl/unsub` for `channel` on `live`; an error is only logged.
    async fn leave_quietly(&self, live: &Live, channel: String) {
        let timeout = self.settings.request_timeout;
        let frame = |req_id| Control::Unsubscribe { req_id, channel };
        let left: Result<(), RequestError> =
            ask(&live.ctx, frame, Instant::now() + timeout, timeout).await;
        if let Err(err) = left {
            tracing::debug!(target: "sente_lite", error = %err, "leaving a channel got no answer");
        }
    }
}
