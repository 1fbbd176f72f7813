//! The server's side of a connection: subscribe and unsubscribe, and the
//! frames only a server sends refused.

use std::sync::Arc;

use crate::connection::Side;
use crate::protocol::{Control, StreamPosition, codes};
use crate::router::DispatchFuture;
use crate::{
    Codec, Ctx, Dispatched, ErrorReply, EventRef, Outcome, Payload, ProtocolError, RouteTable,
};

use super::auth::ChannelAccess;
use super::hub::Shared;

/// The server's side of a connection: it accepts subscribe, unsubscribe and
/// presence requests, and refuses what only servers send.
pub(crate) struct ServerSide {
    pub(crate) shared: Arc<Shared>,
}

impl Side for ServerSide {
    fn control(
        &mut self,
        ctx: &Ctx,
        control: Control,
    ) -> Result<Option<DispatchFuture>, ProtocolError> {
        let codec = ctx.codec();
        match control {
            Control::Subscribe {
                req_id,
                channel,
                since,
            } => {
                // A name out of bounds is refused before any hook sees it.
                let max = self.shared.config.limits.max_channel_name;
                let rule = if channel.is_empty() || channel.len() > max {
                    None
                } else {
                    self.shared
                        .channel_rules
                        .iter()
                        .find(|(pattern, _)| pattern.matches(&channel))
                        .map(|(_, auth)| Arc::clone(auth))
                };
                let shared = Arc::clone(&self.shared);
                let ctx = ctx.clone();
                Ok(Some(Box::pin(async move {
                    let result = match rule {
                        None if channel.is_empty() || channel.len() > max => Err(ErrorReply::new(
                            codes::FORBIDDEN,
                            format!("a channel name is 1 to {max} bytes long"),
                        )),
                        None => Err(ErrorReply::new(
                            codes::FORBIDDEN,
                            format!("no channel pattern of this server matches `{channel}`"),
                        )),
                        Some(authorize) => match authorize(ChannelAccess {
                            conn_id: ctx.conn_id(),
                            user_id: ctx.user_id().cloned(),
                            channel: channel.clone(),
                        })
                        .await
                        {
                            Ok(()) => shared.join_channel(&ctx, &channel, since).await,
                            Err(err) => Err(err),
                        },
                    };
                    reply_message(codec, req_id, result)
                })))
            }
            Control::Unsubscribe { req_id, channel } => {
                self.shared.forget_subscription(ctx, &channel);
                let reply = codec.encode_reply(req_id, &());
                Ok(Some(Box::pin(async move {
                    Dispatched {
                        message: reply.ok(),
                        outcome: Outcome::Ok,
                        timing: None,
                    }
                })))
            }
            Control::Presence {
                req_id,
                channel,
                watch,
            } => {
                let shared = Arc::clone(&self.shared);
                let ctx = ctx.clone();
                Ok(Some(Box::pin(async move {
                    let result = shared.presence_request(&ctx, &channel, watch).await;
                    reply_message(codec, req_id, result)
                })))
            }
            Control::Extensions(names) => {
                // Names this server does not offer are ignored.
                if names.iter().any(|n| n == crate::protocol::EXTENSION_CANCEL) {
                    ctx.set_peer_cancels();
                }
                if self.shared.config.compression.is_some()
                    && names
                        .iter()
                        .any(|n| n == crate::protocol::EXTENSION_COMPRESSION)
                {
                    ctx.set_peer_inflates();
                }
                Ok(None)
            }
            Control::Handshake(_) => Err(ProtocolError::BadFrame {
                encoding: codec.name(),
                detail: "only a server sends `sl/handshake`".into(),
            }),
            Control::Resubscribe { .. } => Err(ProtocolError::BadFrame {
                encoding: codec.name(),
                detail: "only a server sends `sl/resub`".into(),
            }),
            other => Err(ProtocolError::BadFrame {
                encoding: codec.name(),
                detail: format!("unexpected control frame {other:?}"),
            }),
        }
    }

    fn publication(
        &mut self,
        ctx: &Ctx,
        _routes: &RouteTable,
        _channel: std::borrow::Cow<'_, str>,
        _event: EventRef<'_>,
        _position: Option<StreamPosition>,
        _payload: Payload<'_>,
    ) -> Result<Option<DispatchFuture>, ProtocolError> {
        Err(ProtocolError::BadFrame {
            encoding: ctx.codec().name(),
            detail: "clients do not publish: send an event and let a handler broadcast".into(),
        })
    }
}

fn reply_message<T: serde::Serialize>(
    codec: Codec,
    req_id: u64,
    result: Result<T, ErrorReply>,
) -> Dispatched {
    match result {
        Ok(value) => Dispatched {
            message: Some(codec.encode_reply(req_id, &value).unwrap_or_else(|e| {
                codec.encode_error_reply(req_id, &ErrorReply::new(codes::INTERNAL, e.to_string()))
            })),
            outcome: Outcome::Ok,
            timing: None,
        },
        Err(err) => Dispatched {
            outcome: Outcome::Error(err.code.to_string()),
            message: Some(codec.encode_error_reply(req_id, &err)),
            timing: None,
        },
    }
}
