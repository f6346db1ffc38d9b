use super::sim::*;
