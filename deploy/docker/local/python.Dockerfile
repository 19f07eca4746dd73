# local/python:3.11-bookworm: a stand-in for python:3.11-slim-bookworm where no registry
# can be reached, made by deploy/docker/local/setup.sh from local/debian:bookworm
# (debootstrap). Like the public image it has `python` and `pip` on PATH (a venv in
# /usr/local/python). It also trusts this host's extra certificate authorities (an HTTPS
# proxy's), so pip and apt inside builds work; that stays out of the public image path.
FROM local/debian:bookworm
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && python3.11 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:$PATH
CMD ["python3"]
