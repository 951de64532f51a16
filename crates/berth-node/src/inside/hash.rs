//! Password hashes in the container's own scheme, made on the host (the password never
//! reaches a program of the container): `ENCRYPT_METHOD` of its `/etc/login.defs`.
//!
//! - `YESCRYPT`: `$y$…` (RustCrypto's `yescrypt`), cost from `YESCRYPT_COST_FACTOR` as
//!   libxcrypt reads it (default 5: `$y$j9T$`, N = 4096, r = 32, 16 MiB), the format
//!   Debian 11+ writes;
//! - `SHA512` (and the default when unset or unknown — `DES`, `MD5` are not offered for
//!   new passwords): `$6$…` (RustCrypto's `sha-crypt`), rounds from
//!   `SHA_CRYPT_MIN_ROUNDS`/`SHA_CRYPT_MAX_ROUNDS` (default 5000, written without
//!   `rounds=` as glibc and shadow-utils do);
//! - `SHA256`: `$5$…`.

use super::accounts::LoginDefs;
use berth_api::Error;

/// A scheme of password hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Yescrypt,
    Sha512,
    Sha256,
}

impl Scheme {
    pub fn of(defs: &LoginDefs) -> Scheme {
        match defs.encrypt_method.as_deref() {
            Some("YESCRYPT") => Scheme::Yescrypt,
            Some("SHA256") => Scheme::Sha256,
            _ => Scheme::Sha512,
        }
    }
}

fn salt_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b)
        .map_err(|e| Error::internal(format!("no random salt from the kernel: {e}")))?;
    Ok(b)
}

/// Most SHA-crypt rounds and the highest yescrypt cost factor taken from a container's
/// login.defs: the hash is computed on the host (outside the container's limits), so the
/// container's file must not make it cost minutes or a gigabyte. Debian's defaults (5000
/// rounds, cost factor 5) are far below.
const MAX_SHA_ROUNDS: u32 = 500_000;
const MAX_YESCRYPT_COST: u32 = 8;

/// SHA-crypt rounds from login.defs: the minimum when set (the cheapest the container
/// allows), else the maximum, else 5000; within 1000..=MAX_SHA_ROUNDS.
fn sha_rounds(defs: &LoginDefs) -> u32 {
    let r = match (defs.sha_crypt_min_rounds, defs.sha_crypt_max_rounds) {
        (Some(min), Some(max)) => min.min(max),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => 5000,
    };
    r.clamp(1000, MAX_SHA_ROUNDS)
}

/// yescrypt's N and r for a libxcrypt cost factor (1 to 11, taken up to MAX_YESCRYPT_COST:
/// N = 2^15, r = 32, 128 MiB; 5 by default).
fn yescrypt_params(cost: u32) -> (u64, u32) {
    let c = cost.clamp(1, MAX_YESCRYPT_COST);
    if c <= 2 {
        (1 << (c + 9), 8)
    } else {
        (1 << (c + 7), 32)
    }
}

pub fn hash(password: &str, defs: &LoginDefs) -> Result<String, Error> {
    hash_with(password, Scheme::of(defs), defs)
}

pub fn hash_with(password: &str, scheme: Scheme, defs: &LoginDefs) -> Result<String, Error> {
    let fail = |e: &dyn std::fmt::Display| Error::internal(format!("hashing the password: {e}"));
    match scheme {
        Scheme::Yescrypt => {
            use yescrypt::{CustomizedPasswordHasher, Mode, Params, Yescrypt};
            let (n, r) = yescrypt_params(defs.yescrypt_cost_factor.unwrap_or(5));
            let params = Params::new(Mode::default(), n, r, 1).map_err(|e| fail(&e))?;
            let salt = salt_bytes::<16>()?;
            let h = Yescrypt::default()
                .hash_password_customized(password.as_bytes(), &salt, None, None, params)
                .map_err(|e| fail(&e))?;
            Ok(h.as_str().to_string())
        }
        Scheme::Sha512 | Scheme::Sha256 => {
            use sha_crypt::{Algorithm, CustomizedPasswordHasher, Params, ShaCrypt};
            let rounds = sha_rounds(defs);
            let alg = if scheme == Scheme::Sha512 {
                Algorithm::Sha512Crypt
            } else {
                Algorithm::Sha256Crypt
            };
            let params = Params::new(rounds).map_err(|e| fail(&e))?;
            let salt = salt_bytes::<12>()?;
            let h = ShaCrypt::new(alg, params)
                .hash_password_customized(password.as_bytes(), &salt, None, None, params)
                .map_err(|e| fail(&e))?;
            let s = h.as_str().to_string();
            // The default number of rounds is written without `rounds=` (as glibc's crypt
            // and shadow-utils do); the hash is the same.
            Ok(s.replacen("$rounds=5000$", "$", 1))
        }
    }
}

/// Whether `password` matches `hash` (tests, and the CLI's checks).
pub fn verify(password: &str, hash: &str) -> bool {
    use sha_crypt::PasswordVerifier as _;
    if hash.starts_with("$y$") {
        use yescrypt::PasswordVerifier as _;
        yescrypt::Yescrypt::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
    } else {
        sha_crypt::ShaCrypt::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_from_login_defs() {
        let d = |m: &str| LoginDefs::parse(&format!("ENCRYPT_METHOD {m}\n"));
        assert_eq!(Scheme::of(&d("YESCRYPT")), Scheme::Yescrypt);
        assert_eq!(Scheme::of(&d("SHA512")), Scheme::Sha512);
        assert_eq!(Scheme::of(&d("MD5")), Scheme::Sha512);
        assert_eq!(Scheme::of(&LoginDefs::default()), Scheme::Sha512);
        assert_eq!(yescrypt_params(5), (4096, 32));
    }

    /// A container's login.defs cannot make the host spend minutes or a gigabyte on a hash.
    #[test]
    fn hash_cost_from_the_container_is_bounded() {
        assert_eq!(yescrypt_params(11), yescrypt_params(MAX_YESCRYPT_COST));
        let d = LoginDefs::parse("SHA_CRYPT_MIN_ROUNDS 999999999\n");
        assert_eq!(sha_rounds(&d), MAX_SHA_ROUNDS);
        let (n, r) = yescrypt_params(99);
        assert!(128 * n * r as u64 <= 128 << 20);
    }

    #[test]
    fn sha512_hashes_verify_and_match_glibc_format() {
        let h = hash("secret", &LoginDefs::default()).unwrap();
        assert!(h.starts_with("$6$") && !h.contains("rounds="), "{h}");
        assert_eq!(h.split('$').nth(2).unwrap().len(), 16, "{h}");
        assert!(verify("secret", &h) && !verify("Secret", &h));
        // A known answer: `openssl passwd -6 -salt saltsalt secret`.
        assert!(verify(
            "secret",
            "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"
        ));
        let d = LoginDefs {
            sha_crypt_min_rounds: Some(6000),
            ..Default::default()
        };
        let h = hash("secret", &d).unwrap();
        assert!(h.starts_with("$6$rounds=6000$"), "{h}");
        assert!(verify("secret", &h));
    }

    #[test]
    fn yescrypt_hashes_verify() {
        let d = LoginDefs::parse("ENCRYPT_METHOD YESCRYPT\n");
        let h = hash("secret", &d).unwrap();
        assert!(h.starts_with("$y$j9T$"), "{h}");
        assert!(verify("secret", &h) && !verify("secreT", &h));
    }
}
