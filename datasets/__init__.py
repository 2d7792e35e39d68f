"""kinema.datasets: recording episodes as LeRobotDataset v3 directories and loading them."""
