//! Who is calling: the local administrator on the unix socket (SO_PEERCRED uid 0), a bearer
//! token or a login session (cookie + CSRF token) on HTTPS. Failed logins and bad
//! credentials are rate-limited per source address and logged as events.

use crate::error::{forbidden, invalid, ApiError, ApiResult, JsonBody};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use berth_api::agent::Role;
use berth_api::{Error, ErrorKind};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a connection reached berthd (set per connection by the listener).
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// The unix socket, with the peer's uid (SO_PEERCRED).
    Unix { uid: u32 },
    /// TCP (HTTPS, or plain HTTP on loopback when configured).
    Tcp { addr: SocketAddr },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// An owner's containers.
    pub containers: Vec<u32>,
}

impl Caller {
    pub fn root() -> Caller {
        Caller {
            name: "root".into(),
            role: Role::Admin,
            containers: vec![],
        }
    }
    fn of(u: &berth_auth::User) -> Caller {
        Caller {
            name: u.name.clone(),
            role: u.role,
            containers: u.containers.clone(),
        }
    }
}

const SESSION_COOKIE: &str = "berth_session";
const MAX_SESSIONS: usize = 10_000;
const MAX_TRACKED_SOURCES: usize = 10_000;

struct Session {
    user: String,
    csrf: String,
    expires: Instant,
}

/// Login sessions, in memory (a restart logs everyone out), keyed by the cookie's SHA-256.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn create(&self, user: &str, ttl: Duration) -> ApiResult<(String, String)> {
        let id = crate::b64(&berth_auth::random_bytes::<32>()?);
        let csrf = crate::b64(&berth_auth::random_bytes::<32>()?);
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        m.retain(|_, s| s.expires > now);
        if m.len() >= MAX_SESSIONS {
            return Err(ApiError(Error::new(
                ErrorKind::Unavailable,
                "too many open sessions: use a token or try later",
            )));
        }
        m.insert(
            berth_auth::hash_secret(&id),
            Session {
                user: user.into(),
                csrf: csrf.clone(),
                expires: now + ttl,
            },
        );
        Ok((id, csrf))
    }
    fn get(&self, id: &str) -> Option<(String, String)> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&berth_auth::hash_secret(id))
            .filter(|s| s.expires > Instant::now())
            .map(|s| (s.user.clone(), s.csrf.clone()))
    }
    fn remove(&self, id: &str) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&berth_auth::hash_secret(id));
    }
}

/// Failed authentications per source address over the last minute.
pub struct RateLimiter {
    limit: usize,
    map: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(limit: u32) -> Self {
        RateLimiter {
            limit: limit as usize,
            map: Mutex::new(HashMap::new()),
        }
    }
    fn window() -> Duration {
        Duration::from_secs(60)
    }
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(q) = m.get_mut(&ip) else {
            return false;
        };
        while q.front().is_some_and(|t| t.elapsed() > Self::window()) {
            q.pop_front();
        }
        q.len() >= self.limit
    }
    pub fn fail(&self, ip: IpAddr) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_TRACKED_SOURCES && !m.contains_key(&ip) {
            m.retain(|_, q| q.back().is_some_and(|t| t.elapsed() <= Self::window()));
        }
        let q = m.entry(ip).or_default();
        q.push_back(Instant::now());
        while q.len() > self.limit + 1 {
            q.pop_front();
        }
    }
}

fn too_many() -> ApiError {
    ApiError(Error::new(
        ErrorKind::TooManyRequests,
        "too many failed authentications from this address: try again in a minute",
    ))
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError(Error::new(ErrorKind::Unauthorized, msg))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() <= 128)
}

fn is_mutating(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Authenticates every request but `POST /login`, then records mutating ones as events.
pub async fn authenticate(
    State(st): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req.extensions().get::<Peer>().copied();
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if method == Method::POST && path == "/api/v1/login" {
        return next.run(req).await;
    }
    let headers = req.headers().clone();
    let caller = match identify(&st, peer, &method, &headers, &path).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = crate::policy::method_gate(&caller, &method, &path) {
        return e.into_response();
    }
    req.extensions_mut().insert(caller.clone());
    let res = next.run(req).await;
    // A store's writes are its client's backups, many files each: not events one by one;
    // its deletions (but of locks) are.
    let store_write = path.starts_with("/api/v1/backup-store/")
        && (method != Method::DELETE || path.contains("/locks/"));
    if is_mutating(&method) && !store_write {
        crate::audit::request_event(&st.events, &caller, &method, &path, res.status());
    }
    res
}

async fn identify(
    st: &Arc<AppState>,
    peer: Option<Peer>,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
) -> ApiResult<Caller> {
    let addr = match peer {
        Some(Peer::Unix { uid: 0 }) => return Ok(Caller::root()),
        Some(Peer::Unix { uid }) => {
            return Err(forbidden(format!(
                "the unix socket is for root only (peer uid {uid})"
            )))
        }
        Some(Peer::Tcp { addr }) => addr,
        None => return Err(ApiError(Error::internal("connection without peer"))),
    };
    let ip = addr.ip();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        if st.limiter.blocked(ip) {
            return Err(too_many());
        }
        let value = auth.to_str().ok();
        let bearer = value
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|s| (None, s.trim().to_string()));
        // restic's REST clients send the token as HTTP Basic's password (the user's name
        // as its user): accepted for the backup store only.
        let store_path =
            path == "/api/v1/backup-store" || path.starts_with("/api/v1/backup-store/");
        let secret = bearer.or_else(|| {
            let b = value?.strip_prefix("Basic ")?;
            if !store_path {
                return None;
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()?;
            let (u, p) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
            Some(((!u.is_empty()).then(|| u.to_string()), p.to_string()))
        });
        let store = st.auth.clone();
        let found = match secret {
            Some((named, s)) => tokio::task::spawn_blocking(move || store.verify_token(&s))
                .await
                .map_err(|e| ApiError(Error::internal(e.to_string())))??
                .filter(|(_, user)| named.is_none_or(|n| n == user.name)),
            None => None,
        };
        return match found {
            Some((_, user)) => Ok(Caller::of(&user)),
            None => {
                st.limiter.fail(ip);
                st.events.emit(
                    "auth",
                    "token_rejected",
                    "node",
                    "-",
                    serde_json::json!({"source": ip.to_string()}),
                );
                Err(unauthorized("invalid, expired or revoked token"))
            }
        };
    }
    if let Some(id) = cookie(headers, SESSION_COOKIE) {
        if st.limiter.blocked(ip) {
            return Err(too_many());
        }
        let Some((user, csrf)) = st.sessions.get(&id) else {
            st.limiter.fail(ip);
            return Err(unauthorized("session expired or unknown: log in again"));
        };
        if is_mutating(method) {
            let sent = headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !berth_auth::ct_eq(sent.as_bytes(), csrf.as_bytes()) {
                return Err(forbidden(
                    "a cookie-authenticated change needs the session's X-CSRF-Token header",
                ));
            }
        }
        let store = st.auth.clone();
        let u = tokio::task::spawn_blocking(move || store.user(&user))
            .await
            .map_err(|e| ApiError(Error::internal(e.to_string())))?
            .map_err(|_| unauthorized("the session's user no longer exists"))?;
        return Ok(Caller::of(&u));
    }
    Err(unauthorized(
        "authentication required: Authorization: Bearer TOKEN, or a login session",
    ))
}

/// `POST /login`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    user: String,
    password: String,
}

/// The answer of `POST /login` (besides the session cookie).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LoginAnswer {
    /// Send it as `X-CSRF-Token` with every change made with the session cookie.
    pub(crate) csrf: String,
}

/// `POST /login`: a session cookie (HttpOnly, Secure, SameSite=Strict) and its CSRF token.
pub async fn login(
    State(st): State<Arc<AppState>>,
    axum::Extension(peer): axum::Extension<Peer>,
    JsonBody(l): JsonBody<Login>,
) -> ApiResult<Response> {
    let Peer::Tcp { addr } = peer else {
        return Err(invalid(
            "log in over HTTPS; the unix socket is the local administrator's",
        ));
    };
    let ip = addr.ip();
    if st.limiter.blocked(ip) {
        return Err(too_many());
    }
    let user_shown: String = l
        .user
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let store = st.auth.clone();
    let (name, pw) = (l.user, l.password);
    let found = if berth_auth::validate_user_name(&name).is_ok() {
        tokio::task::spawn_blocking(move || store.verify_password(&name, &pw))
            .await
            .map_err(|e| ApiError(Error::internal(e.to_string())))??
    } else {
        None
    };
    let Some(user) = found else {
        st.limiter.fail(ip);
        st.events.emit(
            "auth",
            "login_failed",
            format!("user/{user_shown}"),
            "-",
            serde_json::json!({"source": ip.to_string()}),
        );
        return Err(unauthorized("wrong user name or password"));
    };
    let ttl = Duration::from_secs(st.cfg.session_ttl_s);
    let (id, csrf) = st.sessions.create(&user.name, ttl)?;
    st.events.emit(
        "auth",
        "login",
        format!("user/{}", user.name),
        &user.name,
        serde_json::json!({"source": ip.to_string()}),
    );
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age={}",
        ttl.as_secs()
    );
    let mut r = axum::Json(LoginAnswer { csrf }).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `POST /logout`: ends the session of the cookie, if any.
pub async fn logout(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        st.sessions.remove(&id);
    }
    let mut r = axum::http::StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "berth_session=; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=0",
        ),
    );
    r
}
