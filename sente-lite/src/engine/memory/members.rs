//! Who is there, for the memory engine: channel members and online users,
//! each leaving only after the presence grace so that a reload does not flap.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use crate::engine::{Node, PresenceChange};
use crate::protocol::{ConnId, PresenceMember, UserId};
use crate::server::Presence;

/// Each channel's members, with their info.
type ChannelMembers = HashMap<String, Present<UserId, Option<serde_json::Value>>>;

/// The channels' members and the online users.
#[derive(Default)]
pub(super) struct Members {
    channels: Arc<Mutex<ChannelMembers>>,
    users: Arc<Mutex<Present<UserId, ()>>>,
}

/// Keys (users) with the connections that make them present.
struct Present<K, V> {
    entries: HashMap<K, Entry<V>>,
}

impl<K, V> Default for Present<K, V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

struct Entry<V> {
    conns: Vec<ConnId>,
    /// Bumped at every join: a grace timer that finds another generation
    /// than its own does nothing.
    generation: u64,
    value: V,
}

/// What a join changed.
enum Joined {
    /// The key was not present: it is now.
    New,
    /// Present already, with another value: it has this one now.
    Changed,
    /// Present already, same value.
    Same,
}

impl<K: Eq + Hash + Clone, V: PartialEq> Present<K, V> {
    fn join(&mut self, key: &K, conn: ConnId, value: V) -> Joined {
        match self.entries.get_mut(key) {
            None => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        conns: vec![conn],
                        generation: 0,
                        value,
                    },
                );
                Joined::New
            }
            Some(entry) => {
                if !entry.conns.contains(&conn) {
                    entry.conns.push(conn);
                }
                entry.generation += 1;
                if entry.value == value {
                    Joined::Same
                } else {
                    entry.value = value;
                    Joined::Changed
                }
            }
        }
    }

    /// Removes `conn`; the generation to wait for when it was the key's last.
    fn leave(&mut self, key: &K, conn: ConnId) -> Option<u64> {
        let entry = self.entries.get_mut(key)?;
        entry.conns.retain(|c| *c != conn);
        entry.conns.is_empty().then_some(entry.generation)
    }

    /// Forgets `key` if it is still without connections at `generation`.
    fn expire(&mut self, key: &K, generation: u64) -> bool {
        let gone = self
            .entries
            .get(key)
            .is_some_and(|e| e.conns.is_empty() && e.generation == generation);
        if gone {
            self.entries.remove(key);
        }
        gone
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Members {
    pub(super) fn join(&self, node: &Node, channel: &str, member: PresenceMember, conn: ConnId) {
        let mut channels = lock(&self.channels);
        let present = channels.entry(channel.to_owned()).or_default();
        match present.join(&member.user_id, conn, member.info.clone()) {
            Joined::Same => {}
            // Told under the lock: watchers see a channel's changes in order.
            Joined::New | Joined::Changed => {
                node.presence_changed(channel, PresenceChange::Joined(member));
            }
        }
    }

    pub(super) fn leave(&self, node: &Node, channel: &str, user: &UserId, conn: ConnId) {
        let generation = {
            let mut channels = lock(&self.channels);
            let Some(present) = channels.get_mut(channel) else {
                return;
            };
            match present.leave(user, conn) {
                Some(generation) => generation,
                None => return,
            }
        };
        let channels = Arc::clone(&self.channels);
        let (channel, user, told) = (channel.to_owned(), user.clone(), node.clone());
        node.after_grace(move || {
            let mut channels = lock(&channels);
            let Some(present) = channels.get_mut(&channel) else {
                return;
            };
            if present.expire(&user, generation) {
                if present.entries.is_empty() {
                    channels.remove(&channel);
                }
                told.presence_changed(&channel, PresenceChange::Left(user));
            }
        });
    }

    pub(super) fn list(&self, channel: &str) -> Vec<PresenceMember> {
        let channels = lock(&self.channels);
        let mut members: Vec<PresenceMember> = channels
            .get(channel)
            .map(|present| {
                present
                    .entries
                    .iter()
                    .map(|(user, entry)| PresenceMember {
                        user_id: user.clone(),
                        info: entry.value.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        members
    }

    pub(super) fn user_join(&self, node: &Node, user: &UserId, conn: ConnId) {
        let mut users = lock(&self.users);
        if let Joined::New = users.join(user, conn, ()) {
            node.user_presence(Presence::Online(user.clone()));
        }
    }

    pub(super) fn user_leave(&self, node: &Node, user: &UserId, conn: ConnId) {
        let Some(generation) = lock(&self.users).leave(user, conn) else {
            return;
        };
        let users = Arc::clone(&self.users);
        let (user, told) = (user.clone(), node.clone());
        node.after_grace(move || {
            let mut users = lock(&users);
            if users.expire(&user, generation) {
                // Told under the lock, like the join: in order.
                told.user_presence(Presence::Offline(user));
            }
        });
    }
}
