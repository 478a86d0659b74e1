//! The dashboard's server side, one binary: the login and its cookies, CSRF on
//! cookie-authenticated changes, roles, the embedded assets; and the live view's fragmented
//! MP4 made from real encoder output, read back by ffprobe.

mod fmp4_real;
mod session;
