"""Events: event management, registration with capacity and waitlist, check-in, feedback."""
