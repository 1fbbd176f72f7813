//! Connections per remote address: one host cannot take every slot.
//!
//! Each accepted TCP connection takes a slot of its remote IP address for as
//! long as it lives, before and after the WebSocket upgrade; the slot goes back
//! when the connection ends. Past `Limits::max_connections_per_address`, the
//! connection is answered HTTP 429 and closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The connections open per remote address.
#[derive(Debug, Default)]
pub(crate) struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's slot of its address; gives it back when dropped.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

/// A slot carried from the HTTP connection into the upgraded WebSocket's task
/// (through the upgrade request's extensions), so that it is held for the
/// WebSocket's whole life.
#[derive(Debug, Clone)]
pub(crate) struct SlotCell(Arc<Mutex<Option<AddressSlot>>>);

impl SlotCell {
    pub(crate) fn new(slot: Option<AddressSlot>) -> Self {
        Self(Arc::new(Mutex::new(slot)))
    }

    /// Takes the slot out (the upgrade does, once).
    pub(crate) fn take(&self) -> Option<AddressSlot> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl PerAddress {
    /// A slot for `ip`, or `None` when it already holds `max` connections.
    pub(crate) fn take(table: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = table.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            if *count == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: Arc::clone(table),
            ip,
        })
    }

    /// Connections open from `ip`.
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .table
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_address_and_given_back() {
        let table = Arc::new(PerAddress::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = PerAddress::take(&table, a, 2).unwrap();
        let second = PerAddress::take(&table, a, 2).unwrap();
        assert!(PerAddress::take(&table, a, 2).is_none());
        let other = PerAddress::take(&table, b, 2).unwrap();
        drop(first);
        assert_eq!(table.open(a), 1);
        let again = PerAddress::take(&table, a, 2).unwrap();
        drop((second, again, other));
        assert_eq!((table.open(a), table.open(b)), (0, 0));
        assert!(table.open.lock().unwrap().is_empty());
    }
}
