//! Connection limits, after Kafka's `ConnectionQuotas`: `max.connections` across the
//! broker's listeners (at the limit the acceptor stops accepting until a connection closes;
//! the time it waits is `AcceptorBlockedPercent`) and `max.connections.per.ip` (one more
//! connection from that address is closed at once, and counted).
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct ConnectionQuotas {
    /// One permit per connection that may still open; `max.connections` of them.
    slots: Arc<Semaphore>,
    max_per_ip: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyConnections {
    pub max_per_ip: usize,
}

impl ConnectionQuotas {
    pub fn new(max_connections: usize, max_per_ip: usize) -> Arc<ConnectionQuotas> {
        Arc::new(ConnectionQuotas {
            slots: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            max_per_ip,
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// A slot under `max.connections` if one is free now.
    pub fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.slots).try_acquire_owned().ok()
    }

    /// Waits for a slot under `max.connections` (`None` only if the slots were closed,
    /// which nothing does).
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.slots).acquire_owned().await.ok()
    }

    /// Admits a connection from `ip` holding `slot`, unless the address already has
    /// `max.connections.per.ip`; the returned guard gives both back when dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, slot: OwnedSemaphorePermit) -> Result<ConnectionGuard, TooManyConnections> {
        let mut per_ip = self.per_ip.lock();
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            if *count == 0 {
                per_ip.remove(&ip);
            }
            return Err(TooManyConnections { max_per_ip: self.max_per_ip });
        }
        *count += 1;
        Ok(ConnectionGuard { quotas: Arc::clone(self), ip, _slot: slot })
    }

    /// Open connections from `ip`.
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        self.per_ip.lock().get(&ip).copied().unwrap_or(0)
    }
}

/// Held by a connection's task for its whole life.
pub struct ConnectionGuard {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
    _slot: OwnedSemaphorePermit,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut per_ip = self.quotas.per_ip.lock();
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limits_per_ip_and_in_total() {
        let quotas = ConnectionQuotas::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = quotas.admit(a, quotas.try_slot().unwrap()).unwrap();
        let a2 = quotas.admit(a, quotas.try_slot().unwrap()).unwrap();
        assert_eq!(quotas.admit(a, quotas.try_slot().unwrap()).err(), Some(TooManyConnections { max_per_ip: 2 }));
        let b1 = quotas.admit(b, quotas.try_slot().unwrap()).unwrap();
        assert!(quotas.try_slot().is_none(), "the refused connection gave its slot back; three are open");
        let waiting = tokio::spawn({
            let quotas = quotas.clone();
            async move { quotas.slot().await }
        });
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "the acceptor waits at max.connections");
        drop(a1);
        let slot = waiting.await.unwrap().unwrap();
        assert_eq!(quotas.connections_from(a), 1);
        let a3 = quotas.admit(a, slot).unwrap();
        drop((a2, a3, b1));
        assert_eq!((quotas.connections_from(a), quotas.connections_from(b)), (0, 0));
        assert!(quotas.per_ip.lock().is_empty(), "no entry is kept for addresses without connections");
    }
}
