//! The `healthcheck` subcommand: asks a running instance whether it is serving, for
//! container health checks (the runtime image has no shell and no other client).
//!
//! gRPC services are asked over the standard health protocol for their own service
//! name on their gRPC port; an HTTP service is asked `GET /readyz` on its admin port.
//! Both answer the same readiness. The address comes from the settings (so a
//! container's environment already points it at the right port) unless `--addr` names
//! another; an unspecified address (`0.0.0.0`, `[::]`) means this host's loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// What to ask, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `grpc.health.v1.Health/Check` for `service` at `addr`.
    Grpc {
        /// The gRPC address.
        addr: SocketAddr,
        /// The fully qualified service name asked about.
        service: String,
    },
    /// `GET /readyz` at `addr`.
    Ready {
        /// The admin address.
        addr: SocketAddr,
    },
}

impl Probe {
    /// The same probe at `addr`.
    #[must_use]
    pub fn at(self, addr: SocketAddr) -> Self {
        match self {
            Self::Grpc { service, .. } => Self::Grpc { addr, service },
            Self::Ready { .. } => Self::Ready { addr },
        }
    }

    /// Where the probe connects.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Grpc { addr, .. } | Self::Ready { addr } => *addr,
        }
    }
}

/// The arguments of `healthcheck`.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthcheckArgs {
    /// Check this address instead of the configured one.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<SocketAddr>,
    /// Give up (and report unhealthy) after this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub timeout_ms: u64,
}

/// Why a probe did not find the instance serving.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    /// Nothing answered in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The gRPC health call failed.
    #[error("health check failed: {0}")]
    Rpc(#[from] tonic::Status),
    /// The HTTP exchange failed.
    #[error("request failed: {0}")]
    Http(#[from] hyper::Error),
    /// The instance answered, and is not serving.
    #[error("not serving ({0})")]
    NotServing(String),
}

/// Asks once, within `timeout`.
pub async fn check(probe: &Probe, timeout: Duration) -> Result<(), Unhealthy> {
    let asked = async {
        match probe {
            Probe::Grpc { addr, service } => grpc(loopback_if_unspecified(*addr), service).await,
            Probe::Ready { addr } => ready(loopback_if_unspecified(*addr)).await,
        }
    };
    tokio::time::timeout(timeout, asked)
        .await
        .map_err(|_| Unhealthy::Timeout(timeout))?
}

/// Runs the subcommand: prints the answer, exits 0 when serving and 1 otherwise.
pub async fn run(probe: Probe, args: &HealthcheckArgs) -> ExitCode {
    let probe = match args.addr {
        Some(addr) => probe.at(addr),
        None => probe,
    };
    let target = loopback_if_unspecified(probe.addr());
    let result = check(&probe, Duration::from_millis(args.timeout_ms)).await;
    #[allow(
        clippy::print_stdout,
        reason = "the command's output, kept by the container runtime"
    )]
    match result {
        Ok(()) => {
            println!("{target}: serving");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            println!("{target}: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// A listen address as a client must dial it: the wildcard means this host.
pub fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

async fn grpc(addr: SocketAddr, service: &str) -> Result<(), Unhealthy> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Unhealthy::Connect(e.to_string()))?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| Unhealthy::Connect(e.to_string()))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    let status = response.into_inner().status();
    if status == ServingStatus::Serving {
        Ok(())
    } else {
        Err(Unhealthy::NotServing(status.as_str_name().to_owned()))
    }
}

async fn ready(addr: SocketAddr) -> Result<(), Unhealthy> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Unhealthy::Connect(e.to_string()))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection is driven in the background; it ends with the request.
    tokio::spawn(connection);
    let request = http::Request::get("/readyz")
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| Unhealthy::Connect(e.to_string()))?;
    let response = sender.send_request(request).await?;
    if response.status() == http::StatusCode::OK {
        Ok(())
    } else {
        Err(Unhealthy::NotServing(response.status().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wildcard_means_this_host() {
        let any: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        assert_eq!(
            loopback_if_unspecified(any),
            "127.0.0.1:50051".parse().unwrap()
        );
        let any6: SocketAddr = "[::]:9100".parse().unwrap();
        assert_eq!(loopback_if_unspecified(any6), "[::1]:9100".parse().unwrap());
        let given: SocketAddr = "10.1.2.3:1".parse().unwrap();
        assert_eq!(loopback_if_unspecified(given), given);
    }
}
