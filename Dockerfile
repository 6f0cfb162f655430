FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY jobfleet ./jobfleet
COPY workers ./workers
COPY jobs ./jobs
COPY db ./db
COPY schedules ./schedules
COPY ops ./ops
COPY cli ./cli
COPY demo ./demo
RUN pip install --no-cache-dir . && useradd --create-home jobfleet
USER jobfleet
ENTRYPOINT ["jobfleet"]
CMD ["worker"]
