//! A DNS server for tests: one name, answered with A records the test sets and
//! changes while it runs, so a client resolving through it sees replicas come and go
//! (127.0.0.2, 127.0.0.3... on Linux loopback) as it would in a cluster.
//!
//! It listens on UDP and TCP on one port of 127.0.0.1 and answers every other name
//! NXDOMAIN. Records have a TTL of 0: a resolver asks again each time.

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
    records: Arc<Mutex<Vec<Ipv4Addr>>>,
    server: Server<Answers>,
}

impl TestDns {
    /// Serves `name` (`users.test`, with or without the final dot) with `addrs`, on a
    /// free port of 127.0.0.1.
    pub async fn start(name: &str, addrs: &[Ipv4Addr]) -> std::io::Result<Self> {
        let mut name = Name::from_ascii(name)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // Queries arrive fully qualified (`users.test.`).
        name.set_fqdn(true);
        let records = Arc::new(Mutex::new(addrs.to_vec()));
        let answers = Answers {
            name: LowerName::new(&name.to_lowercase()),
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
        *self.lock() = addrs.to_vec();
    }

    /// Adds `addr` to the answer.
    pub fn add(&self, addr: Ipv4Addr) {
        let mut records = self.lock();
        if !records.contains(&addr) {
            records.push(addr);
        }
    }

    /// Removes `addr` from the answer.
    pub fn remove(&self, addr: Ipv4Addr) {
        self.lock().retain(|a| *a != addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Ipv4Addr>> {
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

/// Answers A queries for one name from the shared record list.
#[derive(Debug)]
struct Answers {
    name: LowerName,
    records: Arc<Mutex<Vec<Ipv4Addr>>>,
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
        let records: Vec<Record> = match query {
            Some(query) if *query.name() == self.name => {
                if query.query_type() == RecordType::A {
                    let owner = Name::from(query.name().clone());
                    let addrs = self
                        .records
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    addrs
                        .into_iter()
                        .map(|ip| Record::from_rdata(owner.clone(), 0, RData::A(A(ip))))
                        .collect()
                } else {
                    // The name exists, with no record of that type (AAAA, say).
                    Vec::new()
                }
            }
            _ => {
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
