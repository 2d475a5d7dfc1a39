"""Replication: delta dissemination, Merkle trees and anti-entropy, all sans-IO."""
