/* encore: the command-line and terminal client. */
#include "cli.h"

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
