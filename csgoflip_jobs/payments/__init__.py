"""Payments: the ledger, deposits, withdrawals and payout gateways."""
