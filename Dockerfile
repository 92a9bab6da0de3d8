# The tk970 MQTT gateway (scripts/gateway) as a container, for a VPS:
#
#   docker build -t tk970-gateway .
#   docker run -d --name tk970-gateway --restart unless-stopped \
#     -p 8888:8888/tcp -p 8888:8888/udp \
#     -e TK970_MQTT_URL='mqtts://gateway:SECRET@broker.example.net' \
#     -v tk970-gateway-data:/data \
#     tk970-gateway --instance vps1 --allow 359586015829802=Van
#
# /data holds the learned cell and Wi-Fi positions (fallback positioning); a volume keeps them.
# Only the protocol core, the listener and the gateway go in; no Home Assistant.
FROM python:3.13-slim

WORKDIR /app
COPY gateway/requirements.txt gateway/requirements.txt
RUN pip install --no-cache-dir --disable-pip-version-check -r gateway/requirements.txt
COPY custom_components/tk970 custom_components/tk970
COPY gateway gateway
RUN useradd --system --uid 10001 --home-dir /data --create-home tk970
USER tk970
ENV PYTHONUNBUFFERED=1 TK970_GATEWAY_DATA=/data
VOLUME /data
EXPOSE 8888/tcp 8888/udp
ENTRYPOINT ["python", "-m", "gateway"]
