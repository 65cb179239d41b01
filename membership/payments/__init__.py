"""Online payments: one provider interface (base.py), adapters for Stripe Checkout and SSLCommerz."""
