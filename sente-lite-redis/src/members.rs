//! Who is there, across servers: each server keeps its own connections'
//! channel members and users (leaving only after the presence grace, so a
//! reload does not flap) and makes Redis hold the same; Redis keeps the
//! union and tells every server what changed. A server that dies is removed
//! by the others once it has not been heard from for the node timeout.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use sente_lite::engine::{EngineError, PresenceChange};
use sente_lite::protocol::{ConnId, PresenceMember, UserId};
use sente_lite::server::Presence;
use tokio::sync::Notify;

use crate::engine::Inner;
use crate::link::bump;
use crate::scripts;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A channel and a user: one membership.
type MemberKey = (Arc<str>, UserId);

/// What this server holds, and what Redis has yet to be told of.
#[derive(Default)]
pub(crate) struct Members {
    local: Mutex<Local>,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct Local {
    members: HashMap<MemberKey, Held<String>>,
    users: HashMap<UserId, Held<()>>,
    /// Memberships and users whose state Redis may not hold yet.
    dirty_members: HashSet<MemberKey>,
    dirty_users: HashSet<UserId>,
}

/// Connections holding a key present, and the key's value.
struct Held<V> {
    conns: Vec<ConnId>,
    /// Bumped at every join: a grace timer that finds another generation
    /// than its own does nothing.
    generation: u64,
    value: V,
}

impl<V: PartialEq> Held<V> {
    /// Adds `conn`; whether Redis needs telling (new, or a new value).
    fn join(entry: Option<&mut Self>, conn: ConnId, value: V) -> Result<bool, Self> {
        match entry {
            None => Err(Self {
                conns: vec![conn],
                generation: 0,
                value,
            }),
            Some(held) => {
                if !held.conns.contains(&conn) {
                    held.conns.push(conn);
                }
                held.generation += 1;
                let changed = held.value != value;
                held.value = value;
                Ok(changed)
            }
        }
    }
}

/// The JSON text of a member's info.
fn info_text(info: Option<&serde_json::Value>) -> String {
    info.map_or_else(|| "null".to_owned(), serde_json::Value::to_string)
}

impl Members {
    pub(crate) fn join(&self, channel: &str, member: PresenceMember, conn: ConnId) {
        let key: MemberKey = (Arc::from(channel), member.user_id);
        let info = info_text(member.info.as_ref());
        let mut local = lock(&self.local);
        match Held::join(local.members.get_mut(&key), conn, info) {
            Ok(false) => return,
            Ok(true) => {}
            Err(new) => {
                local.members.insert(key.clone(), new);
            }
        }
        local.dirty_members.insert(key);
        drop(local);
        self.notify.notify_one();
    }

    pub(crate) fn leave(
        self: &Arc<Self>,
        inner: &Inner,
        channel: &str,
        user: &UserId,
        conn: ConnId,
    ) {
        let key: MemberKey = (Arc::from(channel), user.clone());
        let generation = {
            let mut local = lock(&self.local);
            let Some(held) = local.members.get_mut(&key) else {
                return;
            };
            held.conns.retain(|c| *c != conn);
            if !held.conns.is_empty() {
                return;
            }
            held.generation
        };
        let this = Arc::clone(self);
        after_grace(inner, move || {
            let mut local = lock(&this.local);
            let gone = local
                .members
                .get(&key)
                .is_some_and(|h| h.conns.is_empty() && h.generation == generation);
            if gone {
                local.members.remove(&key);
                local.dirty_members.insert(key);
                drop(local);
                this.notify.notify_one();
            }
        });
    }

    pub(crate) fn user_join(&self, user: &UserId, conn: ConnId) {
        let mut local = lock(&self.local);
        match Held::join(local.users.get_mut(user), conn, ()) {
            Ok(_) => return,
            Err(new) => {
                local.users.insert(user.clone(), new);
            }
        }
        local.dirty_users.insert(user.clone());
        drop(local);
        self.notify.notify_one();
    }

    pub(crate) fn user_leave(self: &Arc<Self>, inner: &Inner, user: &UserId, conn: ConnId) {
        let generation = {
            let mut local = lock(&self.local);
            let Some(held) = local.users.get_mut(user) else {
                return;
            };
            held.conns.retain(|c| *c != conn);
            if !held.conns.is_empty() {
                return;
            }
            held.generation
        };
        let (this, user) = (Arc::clone(self), user.clone());
        after_grace(inner, move || {
            let mut local = lock(&this.local);
            let gone = local
                .users
                .get(&user)
                .is_some_and(|h| h.conns.is_empty() && h.generation == generation);
            if gone {
                local.users.remove(&user);
                local.dirty_users.insert(user);
                drop(local);
                this.notify.notify_one();
            }
        });
    }

    /// Everything this server holds is to be told to Redis again (Redis lost
    /// it, or took this server for dead).
    pub(crate) fn all_dirty(&self) {
        let mut local = lock(&self.local);
        let members: Vec<MemberKey> = local.members.keys().cloned().collect();
        let users: Vec<UserId> = local.users.keys().cloned().collect();
        local.dirty_members.extend(members);
        local.dirty_users.extend(users);
        drop(local);
        self.notify.notify_one();
    }

    /// Makes Redis hold what this server holds, for everything marked; what
    /// fails stays marked for the next time.
    async fn sync(&self, inner: &Inner) -> Result<(), redis::RedisError> {
        let (members, users) = {
            let mut local = lock(&self.local);
            let local = &mut *local;
            let members: Vec<(MemberKey, Option<String>)> = local
                .dirty_members
                .drain()
                .map(|key| {
                    let info = local.members.get(&key).map(|h| h.value.clone());
                    (key, info)
                })
                .collect();
            let users: Vec<(UserId, bool)> = local
                .dirty_users
                .drain()
                .map(|user| {
                    let online = local.users.contains_key(&user);
                    (user, online)
                })
                .collect();
            (members, users)
        };
        if members.is_empty() && users.is_empty() {
            return Ok(());
        }
        let keys = &inner.keys;
        let holds = keys.node_holds(&inner.id);
        let events = keys.presence_events();
        let mut pipe = redis::pipe();
        for ((channel, user), info) in &members {
            pipe.cmd("EVALSHA")
                .arg(scripts::MEMBER_SYNC.get_hash())
                .arg(4)
                .arg(keys.members(channel))
                .arg(keys.member_nodes(channel))
                .arg(&holds)
                .arg(keys.nodes())
                .arg(&**channel)
                .arg(&user.0)
                .arg(&inner.id)
                .arg(if info.is_some() { "1" } else { "0" })
                .arg(info.as_deref().unwrap_or("null"))
                .arg(&events)
                .ignore();
        }
        for (user, online) in &users {
            pipe.cmd("EVALSHA")
                .arg(scripts::USER_SYNC.get_hash())
                .arg(3)
                .arg(keys.user_nodes())
                .arg(&holds)
                .arg(keys.nodes())
                .arg(&user.0)
                .arg(&inner.id)
                .arg(if *online { "1" } else { "0" })
                .arg(&events)
                .ignore();
        }
        let mut commands = inner.link.commands();
        let mut result = pipe.query_async::<()>(&mut commands).await;
        if matches!(&result, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        {
            crate::engine::load_scripts(&mut commands).await?;
            result = pipe.query_async::<()>(&mut commands).await;
        }
        if let Err(e) = result {
            // Told again once Redis answers (the scripts are idempotent).
            let mut local = lock(&self.local);
            local
                .dirty_members
                .extend(members.into_iter().map(|(k, _)| k));
            local.dirty_users.extend(users.into_iter().map(|(u, _)| u));
            return Err(e);
        }
        Ok(())
    }

    /// Whether anything waits to be told to Redis.
    pub(crate) fn pending(&self) -> bool {
        let local = lock(&self.local);
        !local.dirty_members.is_empty() || !local.dirty_users.is_empty()
    }
}

/// Runs `expire` after the node's presence grace (at once before the
/// engine is started).
fn after_grace(inner: &Inner, expire: impl FnOnce() + Send + 'static) {
    match inner.node.get() {
        Some(node) => node.after_grace(expire),
        None => expire(),
    }
}

/// Tells Redis what changed here, until the engine is dropped; on failure,
/// waits for the heartbeat to find Redis again.
pub(crate) async fn run(engine: Weak<Inner>) {
    loop {
        let Some(inner) = engine.upgrade() else {
            return;
        };
        if !inner.members.pending() || inner.link.health().is_err() {
            // A wake-up given meanwhile is kept as a permit.
            let notify = Arc::clone(&inner.members.notify);
            drop(inner);
            notify.notified().await;
            continue;
        }
        if let Err(e) = inner.members.sync(&inner).await {
            inner.link.mark_down(&e);
            tracing::warn!(target: "sente_lite_redis", error = %e, "presence could not be told to Redis; told again once it answers");
        }
    }
}

/// Wakes the sync task (after the links came back).
pub(crate) fn wake(inner: &Inner) {
    inner.members.notify.notify_one();
}

/// Takes in a presence event pushed by Redis.
pub(crate) fn arrived(inner: &Inner, message: &[u8]) {
    let Some(node) = inner.node.get() else {
        return;
    };
    let Ok(parts) = serde_json::from_slice::<Vec<String>>(message) else {
        bump(&inner.link.counters.malformed);
        return;
    };
    match parts.as_slice() {
        [kind, channel, user, info] if kind == "j" => {
            let info = serde_json::from_str::<serde_json::Value>(info)
                .ok()
                .filter(|v| !v.is_null());
            node.presence_changed(
                channel,
                PresenceChange::Joined(PresenceMember {
                    user_id: UserId(user.clone()),
                    info,
                }),
            );
        }
        [kind, channel, user] if kind == "l" => {
            node.presence_changed(channel, PresenceChange::Left(UserId(user.clone())));
        }
        [kind, user] if kind == "on" => node.user_presence(Presence::Online(UserId(user.clone()))),
        [kind, user] if kind == "off" => {
            node.user_presence(Presence::Offline(UserId(user.clone())));
        }
        _ => bump(&inner.link.counters.malformed),
    }
}

/// A channel's members, from Redis, sorted by user id.
pub(crate) async fn list(inner: &Inner, channel: &str) -> Result<Vec<PresenceMember>, EngineError> {
    let mut commands = inner.link.commands();
    let all: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(inner.keys.members(channel))
        .query_async(&mut commands)
        .await
        .map_err(|e| {
            inner.link.mark_down(&e);
            EngineError::Unavailable(format!("cannot read presence from Redis: {e}"))
        })?;
    let mut members: Vec<PresenceMember> = all
        .into_iter()
        .map(|(user, info)| PresenceMember {
            user_id: UserId(user),
            info: serde_json::from_str::<serde_json::Value>(&info)
                .ok()
                .filter(|v| !v.is_null()),
        })
        .collect();
    members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    Ok(members)
}
