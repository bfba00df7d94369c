"""Map the top-level architecture folders into the single `robot_rl` import namespace (see docs/DESIGN)."""

from setuptools import find_packages, setup

FOLDERS = {
    "robot_rl": "robot_rl",
    "robot_rl.sim": "sim",
    "robot_rl.controllers": "controllers",
    "robot_rl.safety": "safety",
    "robot_rl.ros_nodes": "ros_nodes",
}

packages: list[str] = []
package_dir: dict[str, str] = {}
for name, folder in FOLDERS.items():
    package_dir[name] = folder
    packages.append(name)
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"": ["*.json", "*.yaml", "*.xml", "*.launch.py"]},
    include_package_data=True,
)
