//! Failures of the FFI layer. Each one crosses to JavaScript as the text `"<Class>: <message>"`,
//! exactly like the N-API binding's errors (`js_error` in bindings-node), so the shared JS layer
//! (npm/session.js `translateError`) turns both into the same error classes.

use slices_session_core::error::{ErrorKind, SessionError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FfiError {
    #[error(transparent)]
    Session(#[from] SessionError),

    /// The JS shim sent arguments that do not parse. session.js checks user arguments before
    /// they get here, so this names a shim bug or a caller bypassing the public API.
    #[error("invalid arguments for {op}: {source}")]
    Arguments {
        op: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "{kind} operation code {code} does not exist (is the library older than the JS code?)"
    )]
    UnknownOp { kind: &'static str, code: u32 },

    /// A handle number that names nothing (freed, or never issued): a shim bug or a caller
    /// bypassing the public API. Never a use-after-free: see `registry.rs`.
    #[error("no {kind} has the handle {id} (it was freed or never existed)")]
    StaleHandle { kind: &'static str, id: u64 },

    /// A method that exists on one kind of handle only (e.g. `MemoryAdapter.clear`), or a
    /// misuse of the ABI that would otherwise deadlock.
    #[error("{0}")]
    Usage(String),

    #[error("could not encode the result as JSON: {0}")]
    Encode(#[source] serde_json::Error),

    #[error("could not start the async runtime: {0}")]
    Runtime(String),

    /// A Rust panic caught at the boundary (it must never unwind into Deno).
    #[error("internal error: panic in {export}: {detail}")]
    Panic {
        export: &'static str,
        detail: String,
    },
}

impl FfiError {
    /// The JS error class, spelled as npm/session.js expects it.
    pub fn class(&self) -> &'static str {
        match self {
            FfiError::Session(e) => match e.kind() {
                ErrorKind::Closed => "SessionStoreClosedError",
                ErrorKind::InvalidArgument => "TypeError",
                ErrorKind::Config => "SessionError",
                ErrorKind::Adapter => "AdapterError",
                ErrorKind::OAuth => "OAuthError",
            },
            FfiError::Arguments { .. } => "TypeError",
            FfiError::UnknownOp { .. } | FfiError::StaleHandle { .. } | FfiError::Usage(_) => {
                "SessionError"
            }
            FfiError::Encode(_) | FfiError::Runtime(_) | FfiError::Panic { .. } => "AdapterError",
        }
    }

    /// The message JS receives. OAuth errors carry their code as `OAuthError(<code>): ...`,
    /// as in the N-API binding.
    pub fn to_js_message(&self) -> String {
        if let FfiError::Session(e) = self {
            if e.kind() == ErrorKind::OAuth {
                let code = slices_session_core::oauth::oauth_error_code(e).unwrap_or("oauth_error");
                return format!("OAuthError({code}): {e}");
            }
        }
        format!("{}: {}", self.class(), self)
    }
}

pub type FfiResult<T> = Result<T, FfiError>;

/// The message of a caught panic's payload.
pub fn panic_detail(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_class_prefix_of_the_napi_binding() {
        assert_eq!(
            FfiError::from(SessionError::StoreClosed).to_js_message(),
            "SessionStoreClosedError: the session store is closed"
        );
        assert_eq!(
            FfiError::from(SessionError::AdapterClosed).to_js_message(),
            "AdapterError: the adapter is closed"
        );
        assert!(FfiError::from(SessionError::invalid_argument("x", "bad"))
            .to_js_message()
            .starts_with("TypeError: "));
        assert!(FfiError::Usage("nope".into())
            .to_js_message()
            .starts_with("SessionError: "));
    }
}
