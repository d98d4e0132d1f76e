//! Name resolution through a chosen DNS server instead of the system resolver, for a
//! deployment (or a test) that names its own: `client.dns_server = "10.96.0.10:53"`.
//!
//! Nothing is cached: the pool asks again every re-resolution interval and must see
//! what the server says then.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::channel::Resolve;

/// Resolves names with the DNS server at one address (UDP, then TCP).
#[derive(Debug, Clone)]
pub struct DnsServerResolver {
    #[expect(
        dead_code,
        reason = "read in Debug output; the resolver's own shows nothing"
    )]
    server: SocketAddr,
    resolver: TokioResolver,
}

impl DnsServerResolver {
    /// A resolver asking only `server`.
    pub fn new(server: SocketAddr) -> std::io::Result<Self> {
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = server.port();
        let name_server = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
        let config = ResolverConfig::from_name_servers(vec![name_server]);
        let mut options = ResolverOpts::default();
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self { server, resolver })
    }
}

impl Resolve for DnsServerResolver {
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        let resolver = self.resolver.clone();
        let host = host.to_owned();
        Box::pin(async move {
            let found = resolver
                .lookup_ip(host.as_str())
                .await
                .map_err(std::io::Error::other)?;
            Ok(found.iter().map(|ip| SocketAddr::new(ip, port)).collect())
        })
    }
}
