// initexit is a Keep /init that exits at once: the kernel panics
// ("Attempted to kill init") and, with panic=-1 and -no-reboot, the VM stops
// without the Keep ever reporting an exit status.
package main

func main() {}
