//! The daemon's end of the control socket: a Unix stream socket, mode 0600, one JSON
//! request per line, one JSON response per line (see [`crate::control`]).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::control::{MAX_LINE, Request, Response};

/// A request on its way to the main loop, with where to send the answer.
pub type ControlMsg = (Request, oneshot::Sender<Response>);

/// Binds `path` with mode 0600 from the first instant: the socket is created under a
/// temporary name, narrowed, then renamed into place. A stale socket (no daemon behind
/// it) is replaced; a live one is an error.
pub async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use: another batond is running", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let tmp = temp_name(path);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)?;
    Ok(listener)
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Accepts connections forever, passing requests to the main loop through `tx`.
pub async fn serve(listener: UnixListener, tx: mpsc::Sender<ControlMsg>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, tx.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: UnixStream, tx: mpsc::Sender<ControlMsg>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let Ok(n) = (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
        else {
            return;
        };
        if n == 0 {
            return;
        }
        let too_long = !line.ends_with(b"\n") && n >= MAX_LINE;
        let resp = if too_long {
            Response::err("request too long")
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Err(e) => Response::err(format!("invalid request: {e}")),
                Ok(req) => {
                    let (otx, orx) = oneshot::channel();
                    if tx.send((req, otx)).await.is_err() {
                        Response::err("batond is shutting down")
                    } else {
                        orx.await
                            .unwrap_or_else(|_| Response::err("batond is shutting down"))
                    }
                }
            }
        };
        let mut out = serde_json::to_vec(&resp).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        out.push(b'\n');
        if write.write_all(&out).await.is_err() || too_long {
            return;
        }
    }
}
