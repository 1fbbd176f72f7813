//! The server's channel API: publish, read history and presence, subscribe
//! connections from the server side, and look at who is subscribed here.

use std::sync::Arc;

use futures_util::FutureExt as _;

use crate::engine::{EngineError, OutgoingEvent, Publication, Published};
use crate::protocol::{ConnId, PresenceMember, SubscribeReply, UserId, codes};
use crate::{Carries, EncodeError, ErrorReply, OneWay};

use super::Server;

impl Server {
    /// Publishes a one-way event on `channel` through the engine: numbered,
    /// kept in the channel's history when it has one, encoded once per codec
    /// and the bytes shared by every subscriber. Returns how many subscribers
    /// of this server it was queued for (with the in-memory engine, every
    /// subscriber; an engine that delivers through a remote service delivers
    /// later, and this counts 0). See [`Server::publish`] for the position.
    ///
    /// `channel` is a [typed channel](mod@crate::channel) that carries `E`, or a
    /// channel's name (`&str`, `String`), which may carry any event:
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[sente_lite::event("doc.broadcast/said")]
    /// # #[derive(Serialize, Deserialize)]
    /// # struct Said { text: String }
    /// # #[sente_lite::channel("room/{name}", events(Said))]
    /// # struct Room { name: String }
    /// # fn run(server: sente_lite::Server) -> Result<(), sente_lite::EncodeError> {
    /// let said = Said { text: "hello".into() };
    /// server.broadcast(&Room { name: "lobby".into() }, &said)?; // checked: a `Room` carries `Said`
    /// server.broadcast("room/lobby", &said)?; // the same channel, by name
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast<C, E>(&self, channel: &C, event: &E) -> Result<usize, EncodeError>
    where
        C: Carries<E> + ?Sized,
        E: OneWay,
    {
        self.broadcast_outgoing(&channel.channel_name(), OutgoingEvent::new(event))
    }

    /// Publishes like [`Server::broadcast`], to every subscriber of `channel`
    /// but connection `except` of this server: typically the connection whose
    /// handler publishes what its client said, which shows it already
    /// (`ctx.conn_id()`). The publication still takes its position and its
    /// place in the history: the excluded connection sees the offsets it
    /// receives skip one, and a resume from a position before it replays it
    /// (docs/PROTOCOL.md §8).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # use sente_lite::Ctx;
    /// #[sente_lite::event("doc.except/typing")]
    /// #[derive(Serialize, Deserialize)]
    /// struct Typing {
    ///     room: String,
    /// }
    ///
    /// #[sente_lite::handler]
    /// async fn pass_on_typing(ctx: Ctx, typing: Typing) {
    ///     if let Some(server) = ctx.server() {
    ///         let channel = format!("room/{}", typing.room);
    ///         // Everyone in the room but the one typing.
    ///         let _ = server.broadcast_except(&channel, &typing, ctx.conn_id());
    ///     }
    /// }
    /// ```
    pub fn broadcast_except<C, E>(
        &self,
        channel: &C,
        event: &E,
        except: ConnId,
    ) -> Result<usize, EncodeError>
    where
        C: Carries<E> + ?Sized,
        E: OneWay,
    {
        self.broadcast_outgoing(
            &channel.channel_name(),
            OutgoingEvent::new(event).excluding(except),
        )
    }

    fn broadcast_outgoing(
        &self,
        channel: &str,
        event: OutgoingEvent<'_>,
    ) -> Result<usize, EncodeError> {
        let options = self.shared.channel_options(channel);
        match self
            .shared
            .engine
            .publish(channel, &event, &options)
            .now_or_never()
        {
            Some(Ok(published)) => Ok(published.delivered_here),
            Some(Err(EngineError::Encode(e))) => Err(e),
            Some(Err(e)) => {
                tracing::warn!(target: "sente_lite", channel, error = %e, "publication failed");
                Ok(0)
            }
            None => Ok(0),
        }
    }

    /// Publishes a one-way event on `channel`, like [`Server::broadcast`], and
    /// waits for the engine's answer: the publication's position (`None` when
    /// the channel has no subscriber anywhere and keeps no history).
    ///
    /// `channel` is a typed channel that carries `E`, or a channel's name.
    pub async fn publish<C, E>(&self, channel: &C, event: &E) -> Result<Published, EngineError>
    where
        C: Carries<E> + ?Sized,
        E: OneWay,
    {
        let channel = channel.channel_name();
        let options = self.shared.channel_options(&channel);
        let published = self
            .shared
            .engine
            .publish(&channel, &OutgoingEvent::new(event), &options);
        published.await
    }

    /// Publishes like [`Server::publish`], to every subscriber but connection
    /// `except` of this server (see [`Server::broadcast_except`]).
    pub async fn publish_except<C, E>(
        &self,
        channel: &C,
        event: &E,
        except: ConnId,
    ) -> Result<Published, EngineError>
    where
        C: Carries<E> + ?Sized,
        E: OneWay,
    {
        let channel = channel.channel_name();
        let options = self.shared.channel_options(&channel);
        let event = OutgoingEvent::new(event).excluding(except);
        let published = self.shared.engine.publish(&channel, &event, &options);
        published.await
    }

    /// The publications `channel`'s history holds, oldest first
    /// ([`Publication::decode`] gives the event back).
    ///
    /// ```no_run
    /// # use sente_lite::Server;
    /// # #[sente_lite::event("chat/said")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Said { text: String }
    /// # async fn run(server: Server) -> Result<(), sente_lite::engine::EngineError> {
    /// for publication in server.history("room/lobby").await? {
    ///     if let Some(said) = publication.decode::<Said>() {
    ///         println!("{}: {}", publication.offset(), said.text);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn history(&self, channel: &str) -> Result<Vec<Arc<Publication>>, EngineError> {
        let options = self.shared.channel_options(channel);
        self.shared.engine.history(channel, &options).await
    }

    /// The members of `channel`'s presence (users with a connection
    /// subscribed, on every server of the engine), sorted by user id. Empty
    /// for a channel that keeps no presence.
    pub async fn channel_presence(
        &self,
        channel: &str,
    ) -> Result<Vec<PresenceMember>, EngineError> {
        if !self.shared.channel_options(channel).presence {
            return Ok(Vec::new());
        }
        self.shared.engine.presence(channel).await
    }

    /// Subscribes a connection to a channel, without the channel's authorisation
    /// (the server trusts itself).
    pub async fn subscribe(
        &self,
        conn_id: ConnId,
        channel: &str,
    ) -> Result<SubscribeReply, ErrorReply> {
        let ctx = self
            .shared
            .ctx(conn_id)
            .ok_or_else(|| ErrorReply::new(codes::FORBIDDEN, "no such connection"))?;
        self.shared.join_channel(&ctx, channel, None).await
    }

    /// Removes a connection from a channel. Returns whether it was subscribed.
    pub fn unsubscribe(&self, conn_id: ConnId, channel: &str) -> bool {
        self.shared
            .ctx(conn_id)
            .is_some_and(|ctx| self.shared.forget_subscription(&ctx, channel))
    }

    /// Tells this server's subscribers of `channel` that they may have missed
    /// publications: each subscription is ended and its client asked to
    /// subscribe again (`sl/resub`). A client of this crate (Rust or
    /// JavaScript) then subscribes with `since`, the largest position it
    /// holds, and gets what it missed replayed from the channel's history,
    /// or a gap reported (`on_gap`) when the history no longer holds it.
    ///
    /// For an engine that learns its delivery to this server broke (a lost
    /// link to its service, a channel whose epoch changed), and for an
    /// application that knows better than the engine. A subscription still
    /// catching up is answered first and then ended; a presence watch of the
    /// channel ends with its subscription (the clients of this crate watch
    /// again once subscribed). A subscription the server made itself
    /// ([`Server::subscribe`], [`Ctx::subscribe`](crate::Ctx::subscribe) in a
    /// server handler) is ended too: a client that did not ask for it does
    /// not subscribe again. Returns how many connections were told.
    ///
    /// ```no_run
    /// # fn run(server: sente_lite::Server) {
    /// let told = server.resubscribe("room/lobby");
    /// println!("{told} subscribers asked to subscribe again");
    /// # }
    /// ```
    pub fn resubscribe(&self, channel: &str) -> usize {
        self.shared.channels.resubscribe(&self.shared, channel)
    }

    /// Channels with at least one subscriber on this server, sorted.
    pub fn channels(&self) -> Vec<String> {
        self.shared.channels.names()
    }

    /// The connections of this server subscribed to `channel`, with their
    /// users, sorted by connection id.
    pub fn subscribers(&self, channel: &str) -> Vec<(ConnId, Option<UserId>)> {
        self.shared.channels.subscribers(channel)
    }
}
