//! The channels with an `sl/sub` still unanswered on one connection. What
//! needs the server to know a channel waits for the answer: a presence
//! request (the server refuses one for a channel it does not know yet), and
//! the `sl/resub` of a channel being subscribed (the answer's position is
//! where the client resumes from).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

/// The channels with an `sl/sub` unanswered on one connection, each with how
/// many. Cheap to clone; clones share the set.
#[derive(Clone)]
pub(crate) struct Subscribing(Arc<watch::Sender<BTreeMap<String, usize>>>);

impl Subscribing {
    pub(crate) fn new() -> Self {
        Self(Arc::new(watch::Sender::new(BTreeMap::new())))
    }

    /// An `sl/sub` of `channel` goes out: it is unanswered until the guard
    /// drops (after its answer was taken in, or when it was given up).
    pub(crate) fn begin(&self, channel: &str) -> Unanswered {
        self.0.send_modify(|channels| {
            *channels.entry(channel.to_owned()).or_default() += 1;
        });
        Unanswered {
            subscribing: self.clone(),
            channel: channel.to_owned(),
        }
    }

    /// Waits until no `sl/sub` of `channel` is unanswered.
    pub(crate) async fn answered(&self, channel: &str) {
        let mut changes = self.0.subscribe();
        // The sender lives as long as `self`: this ends only when answered.
        let _ = changes
            .wait_for(|channels| !channels.contains_key(channel))
            .await;
    }
}

/// An `sl/sub` not answered yet; dropping it marks it answered.
pub(crate) struct Unanswered {
    subscribing: Subscribing,
    channel: String,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        self.subscribing.0.send_modify(|channels| {
            if let Some(count) = channels.get_mut(&self.channel) {
                *count -= 1;
                if *count == 0 {
                    channels.remove(&self.channel);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Subscribing;

    #[tokio::test]
    async fn a_channel_is_answered_once_every_subscribe_is() {
        let subscribing = Subscribing::new();
        // Nothing unanswered: no wait.
        subscribing.answered("room/a").await;
        let first = subscribing.begin("room/a");
        let second = subscribing.begin("room/a");
        let other = subscribing.begin("room/b");
        let waiting = tokio::spawn({
            let subscribing = subscribing.clone();
            async move { subscribing.answered("room/a").await }
        });
        drop(first);
        drop(other);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "one subscribe is still unanswered");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("answered")
            .expect("the task ran");
    }
}
