//! A bare poem hello-world, served the way Latchkey serves: the default multi-threaded tokio
//! runtime (one worker per core) and poem's server on a TCP listener. `bench/run` measures it
//! with the same load generator and concurrency as Latchkey's JWKS endpoint.
//!
//! Usage: `hello [ADDR]` (default `127.0.0.1:8099`); `GET /` answers `Hello, world!`.

use poem::listener::TcpListener;
use poem::{Route, Server, handler};

#[handler]
fn hello() -> &'static str {
    "Hello, world!"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    let app = Route::new().at("/", poem::get(hello));
    Server::new(TcpListener::bind(addr)).run(app).await
}
