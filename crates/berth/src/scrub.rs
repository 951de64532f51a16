//! Hides the password of `set --userpasswd NAME:PASSWORD` from the process list: once the
//! command line is parsed (into owned strings), the password's bytes in the process's own
//! argument area — what `/proc/PID/cmdline` and `ps` show — are overwritten with `x`. It is
//! visible only for the instant between the `execve` and this (as with vzctl, whose syntax
//! this is; `--userpasswd NAME` asks for it instead).

use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicIsize, AtomicPtr, Ordering};

static ARGC: AtomicIsize = AtomicIsize::new(0);
static ARGV: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());

/// Called by glibc before `main` with the process's own argument vector.
extern "C" fn capture(argc: c_int, argv: *mut *mut c_char, _env: *mut *mut c_char) {
    ARGC.store(argc as isize, Ordering::Relaxed);
    ARGV.store(argv, Ordering::Relaxed);
}

#[used]
#[link_section = ".init_array"]
static CAPTURE: extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) = capture;

/// Overwrites what follows the first `:` of the value of every `--userpasswd`.
pub fn userpasswd() {
    let argc = ARGC.load(Ordering::Relaxed);
    let argv = ARGV.load(Ordering::Relaxed);
    if argv.is_null() {
        return;
    }
    let mut value_next = false;
    for i in 0..argc {
        // SAFETY: glibc's argv has argc valid NUL-terminated strings, writable in place.
        let p = unsafe { *argv.offset(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: as above.
        let s = unsafe { CStr::from_ptr(p) }.to_bytes();
        let value_at = if value_next {
            Some(0)
        } else {
            s.strip_prefix(b"--userpasswd=")
                .map(|_| "--userpasswd=".len())
        };
        value_next = s == b"--userpasswd";
        if let Some(start) = value_at {
            if let Some(colon) = s[start..].iter().position(|b| *b == b':') {
                for j in start + colon + 1..s.len() {
                    // SAFETY: within the string's own bytes.
                    unsafe { *p.add(j) = b'x' as c_char };
                }
            }
        }
    }
}
