//! `wanwatch watcher`: the half that runs outside the house, on a small
//! cloud machine. It expects each site's heartbeats, says DOWN when they
//! stop and RESTORED when they resume, and keeps each site's outages,
//! joined with the reports the sites send once they are back.

pub mod protocol;
