//! A Redis engine for [sente-lite](sente_lite): several server processes,
//! on one machine or many, acting as one.
//!
//! ```no_run
//! use sente_lite::Server;
//! use sente_lite_redis::{RedisConfig, RedisEngine};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = RedisEngine::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let server = Server::builder().engine(engine).bind("0.0.0.0:8080").await?;
//! # Ok(()) }
//! ```
//!
//! Start as many servers as you like on the same Redis (and the same
//! [`RedisConfig::prefix`]); put any load balancer in front, without sticky
//! sessions: a client that reconnects to another server resumes there.
//!
//! # What it does
//!
//! - **Publications cross servers.** A publication is encoded once, on the
//!   server that publishes it (its payload in both encodings), numbered,
//!   kept in the channel's history and sent on a Redis channel by one Lua
//!   script: it is in the history and delivered, or neither. Every server
//!   with subscribers of the channel frames it for them. Publications of one
//!   server keep the order of the calls (they are sent through one ordered
//!   queue, many to a round trip).
//! - **History and recovery** live in Redis (`P:ch:C` holds the epoch and
//!   offset, `P:hist:C` the last publications), so a client resumes with
//!   `since` on whichever server it reaches.
//! - **Presence and users** are the union of every server's. Each server
//!   announces its own members and users; a server that dies without
//!   saying goodbye is removed by the others once it has not been heard
//!   from for [`RedisConfig::node_timeout`] (10 s by default), checked at
//!   every heartbeat (1 s): its members leave within about 11 seconds.
//! - **`send_to_user`** reaches the user's connections on this server at
//!   once and is sent to the other servers that hold the user.
//! - **`request_user`** asks one connection of the user: on this server when
//!   it has one, else on one server that holds the user, which sends the
//!   reply back (at most [`RedisConfig::max_pending`] wait at once).
//!
//! # When Redis goes away
//!
//! The server keeps running: connections stay open, requests are answered,
//! and everything that needs Redis fails with
//! [`EngineError::Unavailable`](sente_lite::engine::EngineError) instead of
//! waiting: publications (at most [`RedisConfig::max_pending`] wait, bounded
//! in bytes too; past that they fail at once), subscriptions, recovery,
//! presence reads. `/health` reports the check `engine` failing and
//! `/metrics` `sente_lite_engine_redis_up 0`. The links reconnect with
//! backoff (100 ms doubling to [`RedisConfig::max_backoff`]).
//!
//! When Redis is back:
//! - presence and users are announced again (each server holds its own);
//! - every channel with subscribers here is compared with its position in
//!   Redis: where publications were made that did not arrive, or the epoch
//!   changed (Redis restarted without its data), the channel's subscribers
//!   are told to subscribe again (`sl/resub`), and resume from what they
//!   hold: replayed when the history has it, `recovered: false` when Redis
//!   lost it. A gap is never silent; a publication is never delivered twice.
//!
//! Redis should run without eviction of these keys (`maxmemory-policy
//! noeviction`, or enough memory); persistence is optional (without it, a
//! Redis restart starts every channel in a new epoch). Redis Cluster is not
//! supported: the scripts touch keys of several channels.

mod config;
mod engine;
mod link;
mod members;
mod queue;
mod requests;
mod scripts;
mod streams;
mod wire;

pub use config::RedisConfig;
pub use engine::RedisEngine;
pub use link::ConnectError;
