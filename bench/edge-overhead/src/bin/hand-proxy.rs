//! The floor: `hand-proxy LISTEN UPSTREAM` serves `POST /echo` as JSON by calling the
//! echo backend over one shared tonic channel. No authentication, limits, logs,
//! traces or metrics: what any edge pays for HTTP/1, JSON and HTTP/2 and nothing more.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use edge_overhead::pb::UnaryEchoRequest;
use edge_overhead::pb::echo_client::EchoClient;
use tonic::transport::Channel;

#[derive(serde::Deserialize)]
struct In {
    message: String,
}

#[derive(serde::Serialize)]
struct Out {
    message: String,
}

async fn echo(
    State(mut client): State<EchoClient<Channel>>,
    Json(request): Json<In>,
) -> Result<Json<Out>, (StatusCode, String)> {
    let reply = client
        .unary_echo(UnaryEchoRequest {
            message: request.message,
        })
        .await
        .map_err(|status| (StatusCode::BAD_GATEWAY, status.message().to_owned()))?;
    Ok(Json(Out {
        message: reply.into_inner().message,
    }))
}

#[tokio::main]
async fn main() -> Result<(), edge_overhead::Error> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8191".to_owned());
    let upstream = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50061".to_owned());
    let channel = Channel::from_shared(upstream)?.connect().await?;
    let app = Router::new()
        .route("/echo", post(echo))
        .with_state(EchoClient::new(channel));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
