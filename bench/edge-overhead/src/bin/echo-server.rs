//! The benchmark's backend: `echo-server ADDR` serves `echo.v1.Echo` on ADDR;
//! `echo-server --descriptor-set PATH` writes the service's descriptor set for the
//! gateway and exits.

use edge_overhead::pb::echo_server::{Echo, EchoServer};
use edge_overhead::pb::{UnaryEchoRequest, UnaryEchoResponse};
use tonic::{Request, Response, Status};

#[derive(Debug)]
struct Service;

#[tonic::async_trait]
impl Echo for Service {
    async fn unary_echo(
        &self,
        request: Request<UnaryEchoRequest>,
    ) -> Result<Response<UnaryEchoResponse>, Status> {
        Ok(Response::new(UnaryEchoResponse {
            message: request.into_inner().message,
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), edge_overhead::Error> {
    let mut args = std::env::args().skip(1);
    let first = args.next().unwrap_or_else(|| "127.0.0.1:50061".to_owned());
    if first == "--descriptor-set" {
        let path = args.next().ok_or("--descriptor-set needs a path")?;
        std::fs::write(path, edge_overhead::DESCRIPTOR_SET)?;
        return Ok(());
    }
    tonic::transport::Server::builder()
        .add_service(EchoServer::new(Service))
        .serve(first.parse()?)
        .await?;
    Ok(())
}
