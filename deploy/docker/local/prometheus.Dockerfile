# local/prometheus:bookworm: Debian's prometheus package, for the compose stack where the
# prom/prometheus image cannot be pulled (deploy/docker/local/setup.sh builds it;
# docker-compose.yml takes it through PROMETHEUS_IMAGE). Like prom/prometheus it runs as
# nobody with /prometheus as its data folder, the prometheus binary as its entry point, and
# has wget for the healthcheck.
FROM local/debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
