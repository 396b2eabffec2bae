# Sourced by benchmark scripts: `project_copy ROOT DEST` copies the project at ROOT into DEST (emptied
# first) without its virtual environment, MLflow store and DVC cache, so a run there has its own.
project_copy() {
  rm -rf "$2" && mkdir -p "$2"
  tar -C "$1" --exclude=./.venv --exclude=./mlflow.db --exclude=./.dvc/cache --exclude=./.dvc/tmp \
    --exclude=./mlruns --exclude=./mlartifacts -cf - . | tar -xf - -C "$2"
}
