//! The `styleforge` command's integration tests, one binary: stylisation, avatars, bad inputs,
//! built-ins, keys, scale-out, training and video (one module a file).
//! One binary rather than one a file, so that the dependencies are linked once.

mod avatar;
mod bad_inputs;
mod builtin;
mod cli;
mod keys;
mod scale_out;
mod train;
mod video;
