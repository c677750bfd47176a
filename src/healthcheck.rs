//! `latchkey healthcheck`: asks a running service for `/healthz` over plain HTTP/1.1 and
//! succeeds on a 200. Container images without a shell or curl (distroless) use it as their
//! HEALTHCHECK; it needs nothing beyond the standard library.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

/// The `/healthz` URL of a service listening on `bind`: an unspecified address (`0.0.0.0`,
/// `[::]`) is reached through the loopback address of its family.
pub fn default_url(bind: SocketAddr) -> String {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, bind.port()))
}

/// GETs `url` (`http://host[:port][/path]`) and succeeds if the answer is 200.
pub fn check(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let (authority, path) = split_url(url)?;
    let addresses: Vec<SocketAddr> = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .collect();
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => return ask(stream, &authority, path, timeout),
            Err(error) => last_error = Some(error),
        }
    }
    match last_error {
        Some(error) => Err(error).with_context(|| format!("cannot connect to {authority}")),
        None => bail!("{authority} resolves to no address"),
    }
}

fn ask(mut stream: TcpStream, host: &str, path: &str, timeout: Duration) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: latchkey-healthcheck\r\nConnection: close\r\n\r\n"
    )?;
    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .context("no answer")?;
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        bail!("unhealthy: {}", status_line.trim_end());
    }
    Ok(())
}

/// `(host:port, path)` of an `http://` URL; the port defaults to 80 and the path to `/healthz`.
fn split_url(url: &str) -> anyhow::Result<(String, &str)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("'{url}' is not an http:// URL");
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/healthz"),
    };
    if authority.is_empty() || authority.contains('@') {
        bail!("'{url}' has no usable host");
    }
    // A port is present when the text after the last ':' is digits and not inside an IPv6
    // literal's brackets.
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        && !authority.ends_with(']');
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn the_default_url_reaches_an_unspecified_bind_address_through_loopback() {
        assert_eq!(
            default_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080/healthz"
        );
        assert_eq!(
            default_url("[::]:9000".parse().unwrap()),
            "http://[::1]:9000/healthz"
        );
        assert_eq!(
            default_url("10.1.2.3:80".parse().unwrap()),
            "http://10.1.2.3:80/healthz"
        );
    }

    #[test]
    fn urls_are_split_into_authority_and_path() {
        assert_eq!(split_url("http://a:1/x").unwrap(), ("a:1".to_owned(), "/x"));
        assert_eq!(
            split_url("http://a").unwrap(),
            ("a:80".to_owned(), "/healthz")
        );
        assert_eq!(
            split_url("http://[::1]/h").unwrap(),
            ("[::1]:80".to_owned(), "/h")
        );
        assert!(split_url("https://a/").is_err());
        assert!(split_url("http://user@a/").is_err());
    }

    fn serve_once(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            while reader.read_line(&mut request).unwrap() > 2 {
                request.clear();
            }
            stream.write_all(answer.as_bytes()).unwrap();
        });
        address
    }

    #[test]
    fn a_200_is_healthy_and_anything_else_is_not() {
        let ok = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        check(&format!("http://{ok}/healthz"), Duration::from_secs(5)).unwrap();
        let bad = serve_once("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        let error = check(&format!("http://{bad}/healthz"), Duration::from_secs(5)).unwrap_err();
        assert!(error.to_string().contains("503"), "{error}");
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        let address = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(check(&format!("http://{address}/healthz"), Duration::from_secs(2)).is_err());
    }
}
