//! A client's key server for the `jwks_uri` tests, a small poem server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use poem::listener::{Acceptor, Listener, TcpListener};

/// A client's key server: serves `body` with `max-age`, counting requests; while held, a
/// request waits (after it is counted and announced) until the server is released.
pub struct KeyServer {
    pub url: String,
    pub body: Arc<std::sync::Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    gate: Arc<Gate>,
    _server: tokio::task::JoinHandle<()>,
}

/// Holds requests back: `open` says whether they may be answered, `arrived` that one came.
struct Gate {
    open: tokio::sync::watch::Sender<bool>,
    arrived: tokio::sync::Notify,
}

impl KeyServer {
    pub async fn start(body: String) -> KeyServer {
        use poem::{EndpointExt, Response, Route, Server, get, handler, web::Data};
        #[handler]
        async fn serve(
            body: Data<&Arc<std::sync::Mutex<String>>>,
            fetches: Data<&Arc<AtomicUsize>>,
            gate: Data<&Arc<Gate>>,
        ) -> Response {
            fetches.fetch_add(1, Ordering::SeqCst);
            gate.arrived.notify_one();
            let _ = gate.open.subscribe().wait_for(|open| *open).await;
            Response::builder()
                .content_type("application/json")
                .header("cache-control", "max-age=600")
                .body(body.lock().unwrap().clone())
        }
        /// `/here` moves within the origin, `/elsewhere` to another host of the same server.
        #[handler]
        fn moved(req: &poem::Request) -> Response {
            let port = req.local_addr().as_socket_addr().map_or(0, |a| a.port());
            let location = match req.uri().path() {
                "/here" => "/jwks.json".to_owned(),
                _ => format!("http://localhost:{port}/jwks.json"),
            };
            Response::builder()
                .status(poem::http::StatusCode::FOUND)
                .header("location", location)
                .finish()
        }
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let body = Arc::new(std::sync::Mutex::new(body));
        let fetches = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Gate {
            open: tokio::sync::watch::Sender::new(true),
            arrived: tokio::sync::Notify::new(),
        });
        let app = Route::new()
            .at("/jwks.json", get(serve))
            .at("/here", get(moved))
            .at("/elsewhere", get(moved))
            .data(Arc::clone(&body))
            .data(Arc::clone(&fetches))
            .data(Arc::clone(&gate));
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        KeyServer {
            url: format!("http://{addr}/jwks.json"),
            body,
            fetches,
            gate,
            _server: server,
        }
    }

    /// Requests from now on wait until [`KeyServer::release`].
    pub fn hold(&self) {
        self.gate.open.send_replace(false);
    }

    pub fn release(&self) {
        self.gate.open.send_replace(true);
    }

    /// Returns once a request has come (at once if one came since the last call).
    pub async fn arrived(&self) {
        self.gate.arrived.notified().await;
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}
