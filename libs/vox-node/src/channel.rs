//! gRPC channels to workers: `unix:///path.sock` (the seeds' one-socket-per-worker
//! layout), `http://host:port` or `https://host:port` (TLS, trusting the CA given to
//! [`crate::tls::trust_ca_file`]).

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};
use vox_domain::{Error, Result};

/// A lazily connecting channel to `url`.
pub fn connect_lazy(url: &str) -> Result<Channel> {
    if let Some(path) = url.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        // The URI is a placeholder: the connector below decides where bytes go.
        let endpoint = Endpoint::from_static("http://worker.local").connect_timeout(std::time::Duration::from_secs(2));
        let connector = tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        });
        return Ok(endpoint.connect_with_connector_lazy(connector));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(endpoint("worker url", url)?.connect_timeout(std::time::Duration::from_secs(2)).connect_lazy());
    }
    Err(Error::invalid("worker url", format!("{url:?}: use unix:///path/to/voxcore_N.sock or http://host:port")))
}

/// An endpoint for an `http://` or `https://` URL, with TLS for the latter; `field`
/// names the setting in errors.
pub fn endpoint(field: &str, url: &str) -> Result<Endpoint> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| Error::invalid(field, format!("{url:?}: {e}")))?
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        return endpoint
            .tls_config(crate::tls::client_config())
            .map_err(|e| Error::invalid(field, format!("{url:?}: TLS settings: {e}")));
    }
    Ok(endpoint)
}
