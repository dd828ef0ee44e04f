//! The client idempotency keys a live session has seen recently, in a bounded window.
//!
//! A key is pending while its message waits for the session's actor, then stored with its
//! message's id and `seq`. Every socket that sent the key while it was pending is a
//! waiter: when the message is stored each of them gets the one acknowledgement (with the
//! one id and `seq`), so a copy that lost the race is told too, even if the socket that
//! won has gone meanwhile.

use std::collections::VecDeque;
use std::sync::Arc;

use chatbox_domain::{ClientMessageId, MessageId, Seq};

use crate::socket::{SocketHandle, SocketId};

/// How many recent client idempotency keys a live session remembers.
pub const REMEMBERED_CLIENT_IDS: usize = 128;

/// A key whose message is already stored (read from storage when a session is loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The key.
    pub id: ClientMessageId,
    /// The stored message's id.
    pub message_id: MessageId,
    /// The stored message's sequence number.
    pub seq: Seq,
}

/// What became of a key offered to [`RecentClientIds::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeySeen {
    /// Never seen: the message is new.
    New,
    /// Accepted before, not stored yet: the socket waits for the acknowledgement.
    Pending,
    /// Already stored with this id and sequence number.
    Stored(MessageId, Seq),
}

#[derive(Debug)]
enum KeyState {
    /// Waiting for the actor; the sockets (beyond the turn's own) to acknowledge.
    Pending {
        origin: SocketId,
        waiters: Vec<Arc<SocketHandle>>,
    },
    Stored(MessageId, Seq),
}

#[derive(Debug)]
struct Entry {
    id: ClientMessageId,
    state: KeyState,
}

/// The bounded window of recent keys.
#[derive(Debug, Default)]
pub(super) struct RecentClientIds {
    entries: VecDeque<Entry>,
}

impl RecentClientIds {
    /// The window, seeded with keys already stored (the most recent ones win).
    pub(super) fn seeded(keys: Vec<StoredKey>) -> Self {
        let mut entries = VecDeque::with_capacity(keys.len().min(REMEMBERED_CLIENT_IDS));
        let skip = keys.len().saturating_sub(REMEMBERED_CLIENT_IDS);
        entries.extend(
            keys.into_iter()
                .skip(skip)
                .map(|key| Entry { id: key.id, state: KeyState::Stored(key.message_id, key.seq) }),
        );
        Self { entries }
    }

    /// Offers `id` sent by `socket`: remembers it as pending when new; a socket repeating
    /// a pending key becomes one of its waiters.
    pub(super) fn admit(&mut self, id: &ClientMessageId, socket: &Arc<SocketHandle>) -> KeySeen {
        if let Some(known) = self.entries.iter_mut().find(|known| &known.id == id) {
            return match &mut known.state {
                KeyState::Pending { origin, waiters } => {
                    if *origin != socket.id() && waiters.iter().all(|w| w.id() != socket.id()) {
                        waiters.push(Arc::clone(socket));
                    }
                    KeySeen::Pending
                }
                KeyState::Stored(message_id, seq) => KeySeen::Stored(message_id.clone(), *seq),
            };
        }
        if self.entries.len() >= REMEMBERED_CLIENT_IDS {
            self.entries.pop_front();
        }
        let state = KeyState::Pending { origin: socket.id(), waiters: Vec::new() };
        self.entries.push_back(Entry { id: id.clone(), state });
        KeySeen::New
    }

    /// Records where the message of a key was stored (a pending key here, or one another
    /// replica stored); returns the sockets waiting for its acknowledgement besides the
    /// one that sent it.
    pub(super) fn stored(
        &mut self,
        id: &ClientMessageId,
        message_id: &MessageId,
        seq: Seq,
    ) -> Vec<Arc<SocketHandle>> {
        let Some(known) = self.entries.iter_mut().find(|known| &known.id == id) else {
            if self.entries.len() >= REMEMBERED_CLIENT_IDS {
                self.entries.pop_front();
            }
            let state = KeyState::Stored(message_id.clone(), seq);
            self.entries.push_back(Entry { id: id.clone(), state });
            return Vec::new();
        };
        match std::mem::replace(&mut known.state, KeyState::Stored(message_id.clone(), seq)) {
            KeyState::Pending { waiters, .. } => waiters,
            KeyState::Stored(..) => Vec::new(),
        }
    }

    /// Where the message of `id` was stored, if it was.
    pub(super) fn stored_as(&self, id: &ClientMessageId) -> Option<(MessageId, Seq)> {
        self.entries.iter().find(|known| &known.id == id).and_then(|known| match &known.state {
            KeyState::Stored(message_id, seq) => Some((message_id.clone(), *seq)),
            KeyState::Pending { .. } => None,
        })
    }

    /// Forgets a key whose message could not be stored, so a retry is accepted; returns
    /// the sockets that were waiting for it besides the one that sent it.
    pub(super) fn forget(&mut self, id: &ClientMessageId) -> Vec<Arc<SocketHandle>> {
        let Some(position) = self.entries.iter().position(|known| &known.id == id) else {
            return Vec::new();
        };
        match self.entries.remove(position).map(|entry| entry.state) {
            Some(KeyState::Pending { waiters, .. }) => waiters,
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::SocketBudget;
    use chatbox_domain::UserId;

    fn socket() -> Arc<SocketHandle> {
        let budget = SocketBudget { max_bytes: 4096, encode: |_| String::new() };
        SocketHandle::new(UserId::parse("u").expect("id"), budget).0
    }

    fn key(n: usize) -> ClientMessageId {
        ClientMessageId::parse(&format!("k{n}")).expect("id")
    }

    #[test]
    fn keys_are_remembered_boundedly_and_can_be_forgotten() {
        let (origin, other) = (socket(), socket());
        let mut keys = RecentClientIds::default();
        let first = key(0);
        assert_eq!(keys.admit(&first, &origin), KeySeen::New);
        assert_eq!(keys.admit(&first, &origin), KeySeen::Pending, "a repeat is recognised");
        assert_eq!(keys.admit(&first, &other), KeySeen::Pending);
        let waiters = keys.forget(&first);
        assert_eq!(waiters.len(), 1, "the other socket waited; the origin is not its own waiter");
        assert_eq!(waiters[0].id(), other.id());
        assert_eq!(keys.admit(&first, &origin), KeySeen::New, "forgotten after a failed store");
        let message_id = MessageId::parse("m0").expect("id");
        assert!(keys.stored(&first, &message_id, Seq(7)).is_empty());
        assert_eq!(
            keys.admit(&first, &other),
            KeySeen::Stored(message_id, Seq(7)),
            "a stored repeat names its message"
        );
        for n in 1..=REMEMBERED_CLIENT_IDS {
            assert_eq!(keys.admit(&key(n), &origin), KeySeen::New);
        }
        assert_eq!(
            keys.admit(&first, &origin),
            KeySeen::New,
            "the oldest key fell out of the bounded window"
        );
    }

    #[test]
    fn the_window_holds_the_last_remembered_keys_not_the_newest_alone() {
        let socket = socket();
        let mut keys = RecentClientIds::default();
        let message_id = MessageId::parse("m").expect("id");
        for n in 0..REMEMBERED_CLIENT_IDS {
            assert_eq!(keys.admit(&key(n), &socket), KeySeen::New);
            keys.stored(&key(n), &message_id, Seq(n as u64));
        }
        // A retry of any of the last REMEMBERED_CLIENT_IDS keys, the oldest included, is
        // recognised: its message is not stored and answered twice.
        for n in 0..REMEMBERED_CLIENT_IDS {
            assert_eq!(
                keys.admit(&key(n), &socket),
                KeySeen::Stored(message_id.clone(), Seq(n as u64)),
                "key {n}"
            );
        }
        assert_eq!(keys.admit(&key(REMEMBERED_CLIENT_IDS), &socket), KeySeen::New);
        assert_eq!(keys.admit(&key(0), &socket), KeySeen::New, "one key past the window: the oldest went");
        assert_eq!(keys.admit(&key(2), &socket), KeySeen::Stored(message_id, Seq(2)), "the others stay");
    }

    #[test]
    fn every_socket_that_repeated_a_pending_key_waits_for_its_ack_once() {
        let (origin, a, b) = (socket(), socket(), socket());
        let mut keys = RecentClientIds::default();
        assert_eq!(keys.admit(&key(1), &origin), KeySeen::New);
        for repeat in [&a, &b, &a, &origin] {
            assert_eq!(keys.admit(&key(1), repeat), KeySeen::Pending);
        }
        assert_eq!(keys.stored_as(&key(1)), None, "pending is not stored");
        let waiters = keys.stored(&key(1), &MessageId::parse("m").expect("id"), Seq(3));
        let ids: Vec<_> = waiters.iter().map(|w| w.id()).collect();
        assert_eq!(ids, vec![a.id(), b.id()]);
        assert_eq!(keys.stored_as(&key(1)), Some((MessageId::parse("m").expect("id"), Seq(3))));
    }

    #[test]
    fn a_key_another_replica_stored_is_learnt_and_recognised() {
        let mut keys = RecentClientIds::default();
        let message_id = MessageId::parse("elsewhere").expect("id");
        assert!(keys.stored(&key(9), &message_id, Seq(4)).is_empty(), "nobody here waited");
        assert_eq!(keys.stored_as(&key(9)), Some((message_id.clone(), Seq(4))));
        assert_eq!(keys.admit(&key(9), &socket()), KeySeen::Stored(message_id, Seq(4)));
        for n in 0..REMEMBERED_CLIENT_IDS {
            keys.stored(&key(100 + n), &MessageId::parse("m").expect("id"), Seq(n as u64));
        }
        assert_eq!(keys.entries.len(), REMEMBERED_CLIENT_IDS, "learning stays within the window");
        assert_eq!(keys.stored_as(&key(9)), None, "the oldest fell out");
    }

    #[test]
    fn a_seeded_window_keeps_the_most_recent_keys() {
        let keys: Vec<StoredKey> = (0..REMEMBERED_CLIENT_IDS + 5)
            .map(|n| StoredKey {
                id: key(n),
                message_id: MessageId::parse("m").expect("id"),
                seq: Seq(n as u64),
            })
            .collect();
        let mut window = RecentClientIds::seeded(keys);
        assert_eq!(window.entries.len(), REMEMBERED_CLIENT_IDS);
        assert_eq!(window.admit(&key(0), &socket()), KeySeen::New, "the oldest were dropped");
        let newest = REMEMBERED_CLIENT_IDS + 4;
        assert!(
            matches!(window.admit(&key(newest), &socket()), KeySeen::Stored(_, Seq(n)) if n == newest as u64)
        );
    }
}
