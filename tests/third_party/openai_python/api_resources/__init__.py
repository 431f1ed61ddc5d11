# File generated from our OpenAPI spec by Castiron. See CONTRIBUTING.md for details.
