FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md config.yaml ./
COPY engine engine
COPY storage storage
COPY devservers devservers
COPY service service
COPY connectors connectors
COPY ws ws
COPY api api
COPY bench bench
COPY migrations migrations
RUN pip install --no-cache-dir -e . && useradd --create-home switchboard \
    && mkdir /data && chown switchboard /data
USER switchboard
ENV SWITCHBOARD_HTTP_HOST=0.0.0.0 SWITCHBOARD_DATA_DIR=/data
EXPOSE 8001
CMD ["switchboard", "serve"]
