//! A DNS server for tests: names answered with A records the test sets and changes
//! while it runs, so a client resolving through it sees replicas come and go
//! (127.0.0.2, 127.0.0.3... on Linux loopback) as it would in a cluster.
//!
//! It listens on UDP and TCP on one port of 127.0.0.1 and answers every name it was
//! not given NXDOMAIN. Records have a TTL of 0: a resolver asks again each time.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};

/// A running test DNS server; stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    /// The name given to [`TestDns::start`], which `set`, `add` and `remove` change.
    first: LowerName,
    records: Arc<Mutex<HashMap<LowerName, Vec<Ipv4Addr>>>>,
    server: Server<Answers>,
}

/// `name` as queries carry it: fully qualified, lower case.
fn lower_name(name: &str) -> std::io::Result<LowerName> {
    let mut name = Name::from_ascii(name)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // Queries arrive fully qualified (`users.test.`).
    name.set_fqdn(true);
    Ok(LowerName::new(&name.to_lowercase()))
}

impl TestDns {
    /// Serves `name` (`users.test`, with or without the final dot) with `addrs`, on a
    /// free port of 127.0.0.1.
    pub async fn start(name: &str, addrs: &[Ipv4Addr]) -> std::io::Result<Self> {
        let first = lower_name(name)?;
        let records = Arc::new(Mutex::new(HashMap::from([(first.clone(), addrs.to_vec())])));
        let answers = Answers {
            records: Arc::clone(&records),
        };
        // One port for both: bind UDP first, then TCP on the port it got.
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = udp.local_addr()?;
        let tcp = TcpListener::bind(addr).await?;
        let mut server = Server::new(answers);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        Ok(Self {
            addr,
            first,
            records,
            server,
        })
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The addresses the name resolves to from now on.
    pub fn set(&self, addrs: &[Ipv4Addr]) {
        self.lock().insert(self.first.clone(), addrs.to_vec());
    }

    /// Adds `addr` to the answer.
    pub fn add(&self, addr: Ipv4Addr) {
        let mut records = self.lock();
        let addrs = records.entry(self.first.clone()).or_default();
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }

    /// Removes `addr` from the answer.
    pub fn remove(&self, addr: Ipv4Addr) {
        if let Some(addrs) = self.lock().get_mut(&self.first) {
            addrs.retain(|a| *a != addr);
        }
    }

    /// Serves another name (or changes one): `name` resolves to `addrs` from now on,
    /// so one server can stand for a cluster's DNS with a name per service.
    pub fn set_name(&self, name: &str, addrs: &[Ipv4Addr]) -> std::io::Result<()> {
        self.lock().insert(lower_name(name)?, addrs.to_vec());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LowerName, Vec<Ipv4Addr>>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for TestDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDns")
            .field("addr", &self.addr)
            .field("records", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.server.shutdown_token().cancel();
    }
}

/// Answers A queries for the names in the shared record table.
#[derive(Debug)]
struct Answers {
    records: Arc<Mutex<HashMap<LowerName, Vec<Ipv4Addr>>>>,
}

#[async_trait::async_trait]
impl RequestHandler for Answers {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        let query = request.queries.queries().first();
        let known = query.and_then(|query| {
            let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
            records
                .get(query.name())
                .cloned()
                .map(|addrs| (query, addrs))
        });
        let records: Vec<Record> = match known {
            Some((query, addrs)) => {
                if query.query_type() == RecordType::A {
                    let owner = Name::from(query.name().clone());
                    addrs
                        .into_iter()
                        .map(|ip| Record::from_rdata(owner.clone(), 0, RData::A(A(ip))))
                        .collect()
                } else {
                    // The name exists, with no record of that type (AAAA, say).
                    Vec::new()
                }
            }
            None => {
                metadata.response_code = ResponseCode::NXDomain;
                Vec::new()
            }
        };
        let response = MessageResponseBuilder::from_message_request(request).build(
            metadata,
            records.iter(),
            [],
            [],
            [],
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => {
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
