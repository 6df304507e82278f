FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py beat_schedule.py ./
COPY csgoflip_jobs ./csgoflip_jobs
COPY workers ./workers
RUN pip install --no-cache-dir .
RUN useradd --create-home jobs
USER jobs
CMD ["csgoflip-jobs", "worker"]
