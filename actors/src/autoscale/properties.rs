//! Property tests of the autoscale policy.
